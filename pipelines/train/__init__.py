"""Train: fit the PyTorch network on the features, tracked in MLflow; checkpoints, devices, DDP.

Modules, top-down: ``stage`` (the edge: :func:`run`) uses ``data`` (the features as tensors),
``network`` (the default model and the factory seam), ``loop`` (the pure training loop) with
``placement`` (devices, bf16) and ``distributed`` (torchrun/DDP, which knows nothing of the stage),
``checkpoint``, ``model`` (the saved model and its pyfunc) and ``tracking`` (what a run logs);
``worker`` is the process torchrun starts; ``errors``, ``trigger`` and ``form`` stand alone.

Public: :func:`run`, the saved model's :class:`Predictor`, :func:`log_split_datasets`
(the DVC splits as MLflow datasets, which evaluate logs too), and the in-process training core the
backtest calls per step (:class:`TrainingData`, :func:`net_factory`, :func:`train_model`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.common.exports import lazy_exports

if TYPE_CHECKING:
    from pipelines.train.data import TrainingData
    from pipelines.train.errors import TrainError
    from pipelines.train.loop import train_model
    from pipelines.train.model import Predictor, prediction_scores
    from pipelines.train.network import net_factory
    from pipelines.train.stage import run
    from pipelines.train.tracking import log_split_datasets

_API = {
    "run": "stage",
    "TrainError": "errors",
    "Predictor": "model",
    "prediction_scores": "model",
    "log_split_datasets": "tracking",
    "TrainingData": "data",
    "train_model": "loop",
    "net_factory": "network",
}
__all__ = [
    "Predictor",
    "TrainError",
    "TrainingData",
    "log_split_datasets",
    "net_factory",
    "prediction_scores",
    "run",
    "train_model",
]
__getattr__ = lazy_exports(__name__, _API)
