"""Train: fit the PyTorch network on the features, tracked in MLflow; checkpoints, devices, DDP."""

from pipelines.train.stage import run

__all__ = ["run"]
