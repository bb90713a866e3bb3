"""The backtest's error: a replay that cannot start or go on, said with the value and what was expected."""

from __future__ import annotations

from pipelines.common.errors import FlywheelError


class BacktestError(FlywheelError, ValueError):
    """A backtest option, dataset or clock that cannot be replayed."""
