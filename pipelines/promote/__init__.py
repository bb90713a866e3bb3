"""Promote: register the model and move the ``champion`` alias when the gate passes; lineage."""

from pipelines.promote.stage import run

__all__ = ["run"]
