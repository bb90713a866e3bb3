"""Validate: the Great Expectations gate between landed and validated events.

Modules: :mod:`.suite` (schema → GX expectations), :mod:`.gate` (the verdict on one batch) and
:mod:`.stage` (:func:`run` over the lake's landed partitions).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from pipelines.common.exports import lazy_exports

# Before any module of this package imports GX (suite, gate): no usage statistics unless asked for.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

if TYPE_CHECKING:
    from pipelines.validate.gate import ValidationFailed, describe_rejections
    from pipelines.validate.stage import run
    from pipelines.validate.suite import ExpectationsFileError

_API = {
    "run": "stage",
    "describe_rejections": "gate",
    "ValidationFailed": "gate",
    "ExpectationsFileError": "suite",
}
__all__ = ["ExpectationsFileError", "ValidationFailed", "describe_rejections", "run"]
__getattr__ = lazy_exports(__name__, _API)
