"""The production topology on one machine: ``flywheel stack up|down|status`` (operations tooling).

PostgreSQL, Redis, Kafka, the S3 API, an authenticated MLflow server and Airflow on the CeleryExecutor,
each a process started and stopped by PID (docs/operations.md#the-stack). Never imported by a stage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.common.exports import lazy_exports

if TYPE_CHECKING:
    from pipelines.stack.errors import StackError
    from pipelines.stack.layout import client_env, load, state_dir
    from pipelines.stack.stage import down, run, status, up

_API = {
    "StackError": "errors",
    "run": "stage",
    "up": "stage",
    "down": "stage",
    "status": "stage",
    "client_env": "layout",
    "load": "layout",
    "state_dir": "layout",
}
__all__ = ["StackError", "client_env", "down", "load", "run", "state_dir", "status", "up"]
__getattr__ = lazy_exports(__name__, _API)
