"""The process torchrun starts for ``train.devices > 1``: the train stage in one DDP process.

``python -m pipelines.train.worker --workspace W --params P --summary S`` (the command
:func:`pipelines.train.distributed.torchrun_argv` builds): :mod:`~pipelines.train.distributed`
joins the process group and runs :func:`pipelines.train.stage.train_stage` in it. This module ties
the two together so that neither imports the other's side: the stage names this module as a string.
"""

from __future__ import annotations

import sys

from pipelines.train import distributed, stage


def main(argv: list[str] | None = None) -> int:
    """One training process: join the group, train (rank 0 tracks and writes), leave the group."""
    return distributed.run_worker(stage.train_stage, argv)


if __name__ == "__main__":
    sys.exit(main())
