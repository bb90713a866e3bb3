"""Airflow's public REST API (``/api/v2``) over plain HTTP: a login, a call, and errors that say what failed.

The one client of the API in Flywheel: the training run's note (``flywheel_training``'s **record** sets it
through the ``flywheel_airflow_api`` Connection), the embedded Airflow's runner and the test fixtures all use
it. It speaks HTTP only, so nothing here imports Airflow.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from pipelines.common.errors import FlywheelError

RETRIES = 5  # a locked SQLite database makes the API answer 500 "Database error"


class AirflowApiError(FlywheelError):
    """A call of Airflow's REST API failed: the message names the call, the HTTP status (``status``)
    and the API's answer, or the address that does not answer (``status`` None)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def quote(value: str) -> str:
    """A DAG, run or task id as one URL path segment (run ids hold ``:`` and ``+``)."""
    return urllib.parse.quote(value, safe="")


def run_path(dag_id: str, run_id: str) -> str:
    """``/dags/{dag_id}/dagRuns/{run_id}``, quoted."""
    return f"/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}"


class AirflowApi:
    """Airflow's public REST API with the simple auth manager: a JWT from ``/auth/token``, renewed on 401.

    ``retries`` is how often a call is repeated while the database is locked or the API does not answer
    (with a growing pause; default :data:`RETRIES`); 0 fails at once.
    """

    def __init__(
        self, base_url: str, username: str, password: str, timeout_s: float = 60.0, retries: int | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.username, self.password, self.timeout_s = username, password, timeout_s
        self.retries = RETRIES if retries is None else retries
        self._token: str | None = None

    def _send(self, method: str, url: str, body: Any = None, token: str | None = None) -> Any:
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def token(self) -> str:
        """A fresh JWT for the user (``POST /auth/token``)."""
        body = {"username": self.username, "password": self.password}
        token = str(self._send("POST", f"{self.base_url}/auth/token", body)["access_token"])
        self._token = token
        return token

    def _authorized(self, method: str, url: str, body: Any) -> Any:
        try:
            return self._send(method, url, body, self._token or self.token())
        except urllib.error.HTTPError as exc:
            if exc.code != 401:
                raise
            return self._send(method, url, body, self.token())

    def call(self, method: str, path: str, body: Any = None, **query: Any) -> Any:
        """``method /api/v2{path}?query``; the decoded JSON.

        Retried while the database is locked (SQLite has one writer at a time) or the API does not answer;
        any other HTTP error raises :class:`AirflowApiError` with its status and the API's answer.
        """
        params = urllib.parse.urlencode({k: v for k, v in query.items() if v is not None}, doseq=True)
        url = f"{self.base_url}/api/v2{path}" + (f"?{params}" if params else "")
        for attempt in range(self.retries + 1):
            try:
                return self._authorized(method, url, body)
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode(errors="replace")[:800]
                if not (exc.code >= 500 and "Database error" in detail and attempt < self.retries):
                    raise AirflowApiError(f"{method} {path}: HTTP {exc.code}: {detail}", exc.code) from None
            except OSError as exc:  # refused, reset, timed out
                if attempt == self.retries:
                    raise AirflowApiError(
                        f"{method} {path}: the Airflow API at {self.base_url} does not answer ({exc})"
                    ) from None
            time.sleep(1.0 + attempt)
        raise AssertionError("unreachable")

    def health(self) -> dict[str, Any] | None:
        """``GET /api/v2/monitor/health`` (no login needed); None while the API does not answer."""
        try:
            return dict(self._send("GET", f"{self.base_url}/api/v2/monitor/health"))
        except (OSError, ValueError, TypeError):
            return None

    def execution_health(self) -> dict[str, Any] | None:
        """``GET /execution/health`` of the task execution API (no login); None while it does not answer.

        The API server builds its task execution API on the first request to it, which takes seconds: a
        first call here, once the server is up, spares the first task of the first run that wait.
        """
        try:
            return dict(self._send("GET", f"{self.base_url}/execution/health"))
        except (OSError, ValueError, TypeError):
            return None

    def set_note(self, dag_id: str, run_id: str, note: str) -> dict[str, Any]:
        """Put ``note`` on a DAG run (``PATCH .../dagRuns/{run_id}``, ``update_mask=note``); the run."""
        return dict(self.call("PATCH", run_path(dag_id, run_id), {"note": note}, update_mask="note"))
