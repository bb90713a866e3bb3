"""Train: fit the PyTorch network on the features, tracked in MLflow; checkpoints, devices, DDP.

Public: :func:`run`, the saved model's :class:`Predictor`, and :func:`log_split_datasets`
(the DVC splits as MLflow datasets, which evaluate logs too).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.common.exports import lazy_exports

if TYPE_CHECKING:
    from pipelines.train.network import Predictor
    from pipelines.train.stage import TrainError, run
    from pipelines.train.tracking import log_split_datasets

_API = {"run": "stage", "TrainError": "stage", "Predictor": "network", "log_split_datasets": "tracking"}
__all__ = ["Predictor", "TrainError", "log_split_datasets", "run"]
__getattr__ = lazy_exports(__name__, _API)
