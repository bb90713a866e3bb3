"""Backtest: replay a labelled history on a logical clock and compare retraining policies side by side.

Modules, top-down: ``stage`` (the edge: :func:`run`) uses ``history`` (the dataset, read once through
ingest's row rules, then a step at a time), ``clock`` (the logical clock), ``policies`` (never,
every:N, drift, always), ``replay`` (the prequential loop) with ``models`` (featurize and train cores,
in-process) and ``judges`` (the promote stage's gate and the drift stage's check), and ``report`` (the
table, its intervals over steps, the plot, the HTML page and the JSON).

Public: :func:`run` and :class:`BacktestError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.common.exports import lazy_exports

if TYPE_CHECKING:
    from pipelines.backtest.errors import BacktestError
    from pipelines.backtest.stage import run

_API = {"run": "stage", "BacktestError": "errors"}
__all__ = ["BacktestError", "run"]
__getattr__ = lazy_exports(__name__, _API)
