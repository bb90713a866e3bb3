"""FlywheelHook: the settings a task needs, from the environment and Airflow Connections."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from pipelines.common.config import Params
    from pipelines.common.settings import Settings

PROJECT = Path(__file__).resolve().parents[3]


class FlywheelHook(BaseHook):
    """Resolves Flywheel's settings for a task.

    The MLflow tracking URI comes from the Connection ``mlflow_conn_id`` when it
    exists (its host, or its ``extra`` ``tracking_uri``), else from
    ``MLFLOW_TRACKING_URI``, else the embedded SQLite store under ``FLYWHEEL_HOME``.
    Without ``FLYWHEEL_HOME`` / ``FLYWHEEL_PARAMS`` the project holding this
    plugin is used: ``<project>/.flywheel`` and ``<project>/params.yaml``.
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "flywheel_mlflow"
    conn_type = "http"
    hook_name = "Flywheel"

    def __init__(self, mlflow_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.mlflow_conn_id = mlflow_conn_id

    def _tracking_uri(self) -> str | None:
        try:
            conn = self.get_connection(self.mlflow_conn_id)
        except Exception:  # no such Connection: fall back to the environment
            return None
        if conn.extra_dejson.get("tracking_uri"):
            return conn.extra_dejson["tracking_uri"]
        if not conn.host:
            return None
        host = conn.host if "://" in conn.host else f"{conn.schema or 'http'}://{conn.host}"
        return f"{host}:{conn.port}" if conn.port else host

    def mlflow_ui_url(self) -> str | None:
        """The MLflow UI a person opens from the Airflow UI's links, or None (links show disabled).

        The Connection's ``extra`` ``ui_url``, else ``FLYWHEEL_MLFLOW_UI_URL``, else the tracking URI
        when it is an http(s) server (an embedded SQLite store has no UI).
        """
        try:
            extra = self.get_connection(self.mlflow_conn_id).extra_dejson
        except Exception:  # no such Connection: fall back to the environment
            extra = {}
        candidates = (extra.get("ui_url"), os.environ.get("FLYWHEEL_MLFLOW_UI_URL"), self._tracking_uri())
        candidates += (os.environ.get("MLFLOW_TRACKING_URI"),)
        return next((u for u in candidates if u and u.startswith(("http://", "https://"))), None)

    def settings(self) -> Settings:
        from pipelines.common.settings import Settings

        env = dict(os.environ)
        env.setdefault("FLYWHEEL_HOME", str(PROJECT / ".flywheel"))
        env.setdefault("FLYWHEEL_PARAMS", str(PROJECT / "params.yaml"))
        env.setdefault("FLYWHEEL_PROJECT", str(PROJECT))
        uri = self._tracking_uri()
        if uri:
            env["MLFLOW_TRACKING_URI"] = uri
        return Settings.from_env(env)

    def params(self) -> Params:
        from pipelines.common.config import load_params

        return load_params(self.settings().params_path)
