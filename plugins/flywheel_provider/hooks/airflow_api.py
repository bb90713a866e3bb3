"""AirflowApiHook: Airflow's own public REST API, by Connection id, for what a task cannot do itself."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from pipelines.common.airflow_api import AirflowApi


class AirflowApiHook(BaseHook):
    """A client of Airflow's REST API (``/api/v2``) from the Connection ``airflow_api_conn_id``.

    The Connection holds the API server's host (with or without ``http://``), port, and the login and
    password of a user allowed to do the call (editing DAG runs, for a run's note). A task uses it where
    the execution API cannot: setting its own DAG run's note.
    """

    conn_name_attr = "airflow_api_conn_id"
    default_conn_name = "flywheel_airflow_api"
    conn_type = "http"
    hook_name = "Airflow REST API (Flywheel)"

    def __init__(self, airflow_api_conn_id: str = default_conn_name, timeout_s: float = 30.0) -> None:
        super().__init__()
        self.airflow_api_conn_id = airflow_api_conn_id
        self.timeout_s = timeout_s

    def base_url(self) -> str:
        """``scheme://host[:port]`` of the API server, from the Connection (``http`` unless it says)."""
        conn = self.get_connection(self.airflow_api_conn_id)
        host = conn.host or ""
        host = host if "://" in host else f"{conn.schema or 'http'}://{host}"
        return f"{host}:{conn.port}" if conn.port else host

    def get_conn(self) -> AirflowApi:
        """The REST client, logged in as the Connection's user at its first call; raises without one."""
        from pipelines.common.airflow_api import AirflowApi

        conn = self.get_connection(self.airflow_api_conn_id)
        return AirflowApi(self.base_url(), conn.login or "", conn.password or "", timeout_s=self.timeout_s)
