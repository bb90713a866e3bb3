"""Drift: the current window against the champion's training rows; the retrain verdict.

Public: :func:`run` and :func:`describe`, :func:`record_retrain` (the cooldown's clock, started when a
retrain is triggered), and the errors a caller tells apart: :class:`NoChampion` (nothing to compare
with yet), :class:`ReferenceNotFound`, :class:`DriftInputError`.

For callers that bring their own frames (the backtest): :func:`compare` (reference rows vs the
current window, each column against its calibrated threshold; ``drift.window_days`` is the current
window's length), :func:`check_performance` (the champion on the labelled window against its
:class:`Evaluated` metric, from :func:`evaluated_from`) and :func:`decide_retrain` (the pure verdict,
naming the triggers that fired), with their result types.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.common.exports import lazy_exports

if TYPE_CHECKING:
    from pipelines.drift.calibrate import Calibration
    from pipelines.drift.check import DriftCheck, DriftInputError, compare
    from pipelines.drift.decision import TRIGGERS, ColumnDrift, DriftResult, Trigger, Verdict, decide_retrain
    from pipelines.drift.performance import Evaluated, Performance, check_performance, evaluated_from
    from pipelines.drift.reference import NoChampion, ReferenceNotFound
    from pipelines.drift.stage import describe, record_retrain, run

_API = {
    "run": "stage",
    "describe": "stage",
    "record_retrain": "stage",
    "NoChampion": "reference",
    "ReferenceNotFound": "reference",
    "DriftInputError": "check",
    "DriftCheck": "check",
    "compare": "check",
    "Calibration": "calibrate",
    "ColumnDrift": "decision",
    "DriftResult": "decision",
    "TRIGGERS": "decision",
    "Trigger": "decision",
    "Verdict": "decision",
    "decide_retrain": "decision",
    "Evaluated": "performance",
    "Performance": "performance",
    "check_performance": "performance",
    "evaluated_from": "performance",
}
__all__ = [
    "TRIGGERS",
    "Calibration",
    "ColumnDrift",
    "DriftCheck",
    "DriftInputError",
    "DriftResult",
    "Evaluated",
    "NoChampion",
    "Performance",
    "ReferenceNotFound",
    "Trigger",
    "Verdict",
    "check_performance",
    "compare",
    "decide_retrain",
    "describe",
    "evaluated_from",
    "record_retrain",
    "run",
]
__getattr__ = lazy_exports(__name__, _API)
