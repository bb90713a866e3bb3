"""Evaluate: score the held-out split; DVC metrics and plots, logged to the training run."""

from pipelines.evaluate.stage import run

__all__ = ["run"]
