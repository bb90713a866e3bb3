"""What the network learns, per task: its loss, its validation metric and the early-stopping score.

A binary model keeps the loop's own path (weighted BCE, PR-AUC). :class:`Objective` covers the other
tasks: a multiclass model learns cross-entropy over ``schema.classes`` (weighted by inverse class
frequency, capped, with ``train.class_weights``) and a regression model MSE or Huber
(``train.regression_loss``) on the standardized target; both stop early on ``train.early_stopping_metric``
(default ``log_loss`` and ``rmse``), scored with :mod:`pipelines.evaluate.metrics` on the target's own
scale and oriented so that higher is better.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from pipelines.evaluate.metrics import metric, orient

if TYPE_CHECKING:
    from pipelines.common.config import TrainConfig
    from pipelines.featurize import Preprocessor

MAX_CLASS_WEIGHT = 20.0
DEFAULT_STOP = {"binary": "pr_auc", "multiclass": "log_loss", "regression": "rmse"}


@dataclass(frozen=True)
class Objective:
    """The task's loss and validation metric (for binary the loop keeps its own)."""

    task: str = "binary"
    stop_metric: str = "pr_auc"
    target_mean: float = 0.0
    target_std: float = 1.0
    regression_loss: str = "mse"
    class_weights: bool = True
    n_classes: int = 0

    @classmethod
    def of(cls, pre: Preprocessor, cfg: TrainConfig) -> Objective:
        """The objective of a fitted preprocessor's task with the ``train`` params."""
        return cls(
            task=pre.task,
            stop_metric=cfg.early_stopping_metric or DEFAULT_STOP[pre.task],
            target_mean=pre.target_mean,
            target_std=pre.target_std,
            regression_loss=cfg.regression_loss,
            class_weights=cfg.class_weights,
            n_classes=len(pre.classes),
        )

    @property
    def binary(self) -> bool:
        """Whether the loop's own binary path applies."""
        return self.task == "binary"

    def loss(self, train_target: torch.Tensor, device: torch.device) -> nn.Module:
        """Cross-entropy (class-weighted) for multiclass; MSE or Huber for regression."""
        if self.task == "multiclass":
            weight = class_weights(train_target, self.n_classes) if self.class_weights else None
            return nn.CrossEntropyLoss(weight=weight.to(device) if weight is not None else None)
        return nn.HuberLoss() if self.regression_loss == "huber" else nn.MSELoss()

    def outputs(self, logits: torch.Tensor) -> np.ndarray:
        """Logits as the metrics read them: class probabilities ``[n, k]``, or predictions on the
        target's own scale."""
        if self.task == "multiclass":
            return torch.softmax(logits.float(), dim=1).double().cpu().numpy()
        return logits.double().cpu().numpy() * self.target_std + self.target_mean

    def labels(self, target: torch.Tensor) -> np.ndarray:
        """The valid target as the metrics read it: class codes, or values on the target's scale."""
        if self.task == "multiclass":
            return target.cpu().numpy().astype(np.int64)
        return target.double().cpu().numpy() * self.target_std + self.target_mean

    def validate(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[float, float, np.ndarray]:
        """``(metric value, early-stopping score (higher is better), outputs)`` on the valid split."""
        outputs = self.outputs(logits)
        value = metric(self.stop_metric, self.labels(target), outputs)
        return value, orient(self.stop_metric, value), outputs


def class_weights(target: torch.Tensor, n_classes: int, cap: float = MAX_CLASS_WEIGHT) -> torch.Tensor:
    """Inverse class frequency, normalized to a mean of 1 over the classes present, capped at ``cap``."""
    counts = torch.bincount(target.long().cpu(), minlength=n_classes).double()
    weight = torch.where(counts > 0, counts.sum() / (n_classes * counts.clamp(min=1)), torch.zeros(()))
    return weight.clamp(max=cap).float()
