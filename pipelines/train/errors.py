"""The train stage's error: defined on its own so every module of the package can raise it without a cycle."""

from __future__ import annotations

from pipelines.common.errors import FlywheelError


class TrainError(FlywheelError):
    """Training cannot start or produced no usable model."""
