"""``python -m pipelines``: the ``flywheel`` command."""

import sys

from pipelines.cli import main

sys.exit(main())
