"""Drift: the current window against the champion's training rows; the retrain verdict."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.common.exports import lazy_exports

if TYPE_CHECKING:
    from pipelines.drift.stage import describe, run

_API = {"run": "stage", "describe": "stage"}
__all__ = ["describe", "run"]
__getattr__ = lazy_exports(__name__, _API)
