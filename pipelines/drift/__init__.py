"""Drift: the current window against the champion's training rows; the retrain verdict."""

from pipelines.drift.stage import describe, run

__all__ = ["run", "describe"]
