"""Drift: the current window against the champion's training rows; the retrain verdict.

Public: :func:`run` and :func:`describe`, :func:`record_retrain` (the cooldown's clock, started when a
retrain is triggered), and the errors a caller tells apart: :class:`NoChampion` (nothing to compare
with yet), :class:`ReferenceNotFound`, :class:`DriftInputError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.common.exports import lazy_exports

if TYPE_CHECKING:
    from pipelines.drift.check import DriftInputError
    from pipelines.drift.reference import NoChampion, ReferenceNotFound
    from pipelines.drift.stage import describe, record_retrain, run

_API = {
    "run": "stage",
    "describe": "stage",
    "record_retrain": "stage",
    "NoChampion": "reference",
    "ReferenceNotFound": "reference",
    "DriftInputError": "check",
}
__all__ = ["DriftInputError", "NoChampion", "ReferenceNotFound", "describe", "record_retrain", "run"]
__getattr__ = lazy_exports(__name__, _API)
