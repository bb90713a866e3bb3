"""Evaluate: score the held-out split; DVC metrics and plots, logged to the training run.

Public: :func:`run`, and :mod:`~pipelines.evaluate.metrics`, the one implementation of the metrics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.common.exports import lazy_exports

if TYPE_CHECKING:
    from pipelines.evaluate import metrics
    from pipelines.evaluate.stage import EvaluateError, run

_API = {"run": "stage", "EvaluateError": "stage", "metrics": "metrics"}
__all__ = ["EvaluateError", "metrics", "run"]
__getattr__ = lazy_exports(__name__, _API)
