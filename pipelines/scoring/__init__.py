"""Scoring: the champion put to work. Batch scoring of every newly validated event, exactly once; the
champion online (:mod:`~pipelines.scoring.serve`, ``flywheel serve``); its live performance from late labels.

Public: :func:`run` (the stage, ``flywheel score``) and :func:`describe`; :func:`measure` (``flywheel
performance``: late labels joined to the predictions, the metric per day with its block-bootstrap
interval) and :func:`live_scores` (what the drift check's performance trigger reads); the ``labels/``
tier's writer :func:`write_labels` and reader :func:`read_labels` (label files, and validation's labels
from later events with the same key) and :func:`measures_late_labels` (the tasks they are kept for);
:func:`plan` (the pure manifest decision) and :mod:`~pipelines.scoring.manifest` (the predictions tier's
contract); the errors :class:`ScoreError`, :class:`NoChampion` and :class:`LabelError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.common.exports import lazy_exports

if TYPE_CHECKING:
    from pipelines.scoring import manifest, serve
    from pipelines.scoring.live import (
        LABELS,
        LabelError,
        daily_performance,
        join_labels,
        live_scores,
        measure,
        measures_late_labels,
        read_labels,
        write_labels,
    )
    from pipelines.scoring.manifest import Plan, plan
    from pipelines.scoring.stage import SCORE, Model, NoChampion, ScoreError, describe, run, score_frame

_API = {
    "run": "stage",
    "SCORE": "stage",
    "describe": "stage",
    "score_frame": "stage",
    "Model": "stage",
    "ScoreError": "stage",
    "NoChampion": "stage",
    "measure": "live",
    "live_scores": "live",
    "join_labels": "live",
    "daily_performance": "live",
    "LabelError": "live",
    "LABELS": "live",
    "write_labels": "live",
    "read_labels": "live",
    "measures_late_labels": "live",
    "manifest": "manifest",
    "plan": "manifest",
    "Plan": "manifest",
    "serve": "serve",
}
__all__ = [
    "LABELS",
    "SCORE",
    "LabelError",
    "Model",
    "NoChampion",
    "Plan",
    "ScoreError",
    "daily_performance",
    "describe",
    "join_labels",
    "live_scores",
    "manifest",
    "measure",
    "measures_late_labels",
    "plan",
    "read_labels",
    "run",
    "score_frame",
    "serve",
    "write_labels",
]
__getattr__ = lazy_exports(__name__, _API)
