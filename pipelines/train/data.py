"""What training reads: the ``data/features`` tables of the workspace as model tensors.

:class:`TrainingData` holds the train and valid splits as tensors in the preprocessor's feature order
(numeric float32, categorical int64, target float32: int64 class codes for a multiclass task, the
standardized value for a regression one) and knows how to move, pin and shard itself;
:func:`feature_files` names the files a checkpoint's fingerprint hashes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipelines.featurize import Preprocessor
from pipelines.train.errors import TrainError
from pipelines.workspace.paths import PREPROCESS_SPEC, features_file


@dataclass(frozen=True)
class TrainingData:
    """Model tensors of the train and valid splits (numeric float32, categorical int64, target float32)."""

    train_numeric: torch.Tensor
    train_categorical: torch.Tensor
    train_target: torch.Tensor
    valid_numeric: torch.Tensor
    valid_categorical: torch.Tensor
    valid_target: torch.Tensor

    @classmethod
    def from_frames(cls, train: pd.DataFrame, valid: pd.DataFrame, pre: Preprocessor) -> TrainingData:
        """Tensors from the ``data/features`` tables, in the preprocessor's feature order."""
        train_numeric, train_categorical, train_target = map(_tensor, _scaled(pre.split_features(train), pre))
        valid_numeric, valid_categorical, valid_target = map(_tensor, _scaled(pre.split_features(valid), pre))
        return cls(
            train_numeric, train_categorical, train_target, valid_numeric, valid_categorical, valid_target
        )

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> TrainingData:
        return TrainingData(**{f.name: fn(getattr(self, f.name)) for f in fields(self)})

    def to(self, device: torch.device) -> TrainingData:
        """The same tensors on ``device``."""
        return self._map(lambda t: t.to(device))

    def pinned(self) -> TrainingData:
        """The same tensors in page-locked host memory (fast copies to the GPU)."""
        return self._map(lambda t: t.pin_memory())

    def shard(self, rank: int, world_size: int) -> TrainingData:
        """Every ``world_size``-th train row from ``rank`` on, the same count on every rank; valid as is."""
        if world_size == 1:
            return self
        stop = self.n_train // world_size * world_size
        numeric, categorical, target = (
            t[rank:stop:world_size].contiguous()
            for t in (self.train_numeric, self.train_categorical, self.train_target)
        )
        return TrainingData(
            numeric, categorical, target, self.valid_numeric, self.valid_categorical, self.valid_target
        )

    @property
    def nbytes(self) -> int:
        """The size of all the tensors, in bytes."""
        return sum(int(getattr(self, f.name).nbytes) for f in fields(self))

    @property
    def n_train(self) -> int:
        """Rows in the train split."""
        return len(self.train_target)

    @property
    def n_valid(self) -> int:
        """Rows in the valid split."""
        return len(self.valid_target)


def _scaled(
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray], pre: Preprocessor
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A regression target standardized with the train split's mean and std: what the network learns."""
    numeric, categorical, target = arrays
    if pre.task == "regression":
        target = ((target - pre.target_mean) / pre.target_std).astype(np.float32)
    return numeric, categorical, target


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array))


def require_features(workspace: Path) -> Path:
    """The workspace's ``preprocess.json``; a :class:`TrainError` naming it when featurize has not run."""
    spec = workspace / PREPROCESS_SPEC
    if not spec.exists():
        raise TrainError(f"{spec} not found; expected the featurize stage to have written data/features")
    return spec


def load_training_data(workspace: Path) -> tuple[TrainingData, Preprocessor]:
    """Read ``data/features/{train,valid}.parquet`` and ``preprocess.json`` of the workspace."""
    pre = Preprocessor.load(require_features(workspace))
    train, valid = (pd.read_parquet(workspace / features_file(name)) for name in ("train", "valid"))
    return TrainingData.from_frames(train, valid, pre), pre


def feature_files(workspace: Path) -> list[Path]:
    """The files training reads: what a checkpoint's fingerprint hashes."""
    return [
        workspace / features_file("train"),
        workspace / features_file("valid"),
        workspace / PREPROCESS_SPEC,
    ]
