"""Serve: the registry's ``champion`` over HTTP (``flywheel serve``), reloaded when the alias moves.

Modules: :mod:`.requests` (the pure check of a request's records against the schema), :mod:`.champion`
(the served model and the watcher that follows the alias), :mod:`.app` (the FastAPI app) and
:mod:`.stage` (:func:`run`, :class:`ServerThread`); :mod:`.metrics` (Flywheel's model and data metrics for
Prometheus, at ``/metrics`` and from ``flywheel metrics-exporter``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.common.exports import lazy_exports

if TYPE_CHECKING:
    from pipelines.scoring.serve import metrics
    from pipelines.scoring.serve.app import TOKEN_ENV, create_app
    from pipelines.scoring.serve.champion import ChampionWatcher, ServedModel
    from pipelines.scoring.serve.errors import InvalidRecord, ServeError
    from pipelines.scoring.serve.metrics import FlywheelCollector, export_metrics
    from pipelines.scoring.serve.requests import RecordChecker
    from pipelines.scoring.serve.stage import ServerThread, build, run, token_from_env

_API = {
    "run": "stage",
    "build": "stage",
    "ServerThread": "stage",
    "TOKEN_ENV": "app",
    "token_from_env": "stage",
    "create_app": "app",
    "ChampionWatcher": "champion",
    "ServedModel": "champion",
    "InvalidRecord": "errors",
    "ServeError": "errors",
    "RecordChecker": "requests",
    "FlywheelCollector": "metrics",
    "export_metrics": "metrics",
    "metrics": "metrics",
}
__all__ = [
    "TOKEN_ENV",
    "ChampionWatcher",
    "FlywheelCollector",
    "InvalidRecord",
    "RecordChecker",
    "ServeError",
    "ServedModel",
    "ServerThread",
    "build",
    "create_app",
    "export_metrics",
    "metrics",
    "run",
    "token_from_env",
]
__getattr__ = lazy_exports(__name__, _API)
