"""Failure callbacks: a one-line summary in the task log, and a webhook post when a Connection exists.

Attached to every Flywheel DAG through ``default_args["on_failure_callback"]``. The
summary names the DAG, the task, the run, the try, the exception's last line and the
log URL. When the HTTP Connection ``flywheel_alerts`` exists, the same summary is posted
to it as JSON (``{"text": ..., "dag_id": ..., ...}``, which Slack, Teams and Mattermost
incoming webhooks accept); without it the callback only logs. A webhook that fails is
logged and never fails the task a second time.

The Connection: ``host`` is the webhook URL (or a host name, with ``schema`` http/https,
``port`` and an ``endpoint`` path in ``extra``); ``extra`` may hold ``headers`` (a dict)
and ``timeout`` (seconds). For example::

    AIRFLOW_CONN_FLYWHEEL_ALERTS='{"conn_type": "http", "host": "https://hooks.example.com/T000/B000"}'

Only the standard library is imported here: DAG files import this module when they are parsed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

ALERTS_CONN_ID = "flywheel_alerts"


def last_line(exc: BaseException | str | None) -> str:
    """The exception's type and the last non-empty line of its message (what a person reads first)."""
    if exc is None:
        return "no exception recorded (the task was marked failed, killed or timed out)"
    text = str(exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    tail = lines[-1] if lines else ""
    if isinstance(exc, BaseException):
        return f"{type(exc).__name__}: {tail}" if tail else type(exc).__name__
    return tail


def failure_summary(context: Mapping[str, Any]) -> dict[str, Any]:
    """What failed, where, on which try, why, and where its log is, from a task callback's context."""
    ti = context.get("task_instance") or context.get("ti")
    dag_run = context.get("dag_run")
    return {
        "dag_id": getattr(ti, "dag_id", None) or getattr(dag_run, "dag_id", None),
        "task_id": getattr(ti, "task_id", None),
        "run_id": getattr(ti, "run_id", None) or getattr(dag_run, "run_id", None),
        "try_number": getattr(ti, "try_number", None),
        "max_tries": getattr(ti, "max_tries", None),
        "error": _error(context.get("exception"), ti),
        "log_url": _log_url(ti),
    }


def _error(exc: BaseException | str | None, ti: Any) -> str:
    """The exception's last line; a timeout says which stage ran past which limit."""
    if type(exc).__name__ == "AirflowTaskTimeout" and "exceeded its execution_timeout" not in str(exc):
        from flywheel_provider.timeouts import timeout_message

        task_id = getattr(ti, "task_id", None) or "?"
        limit = getattr(getattr(ti, "task", None), "execution_timeout", None)
        return f"AirflowTaskTimeout: {timeout_message(task_id, limit)}"
    return last_line(exc)


def _log_url(ti: Any) -> str | None:
    try:
        return getattr(ti, "log_url", None)
    except Exception:  # the URL is a convenience; a missing base_url must not hide the failure
        return None


def render(summary: Mapping[str, Any]) -> str:
    """The summary as one line for the log and the webhook's ``text``."""
    tries = summary.get("try_number")
    if tries is not None and summary.get("max_tries") is not None:
        tries = f"{tries} of {int(summary['max_tries']) + 1}"
    return (
        f"Flywheel task failed: dag={summary.get('dag_id')} task={summary.get('task_id')} "
        f"run={summary.get('run_id')} try={tries}: {summary.get('error')} — log: {summary.get('log_url')}"
    )


def webhook_from_connection(conn: Any) -> tuple[str, dict[str, str], float]:
    """``(url, headers, timeout)`` of an HTTP Connection (see the module docstring)."""
    extra = conn.extra_dejson if hasattr(conn, "extra_dejson") else {}
    host = (conn.host or "").strip()
    if not host:
        raise ValueError(f"Connection {conn.conn_id!r} has no host; expected the webhook URL in host")
    if "://" in host:
        url = host
    else:
        url = f"{conn.schema or 'https'}://{host}" + (f":{conn.port}" if conn.port else "")
    endpoint = str(extra.get("endpoint") or "").lstrip("/")
    if endpoint:
        url = f"{url.rstrip('/')}/{endpoint}"
    headers = {str(k): str(v) for k, v in (extra.get("headers") or {}).items()}
    return url, headers, float(extra.get("timeout", 10))


def post_json(url: str, payload: Mapping[str, Any], headers: Mapping[str, str], timeout: float) -> int:
    """POST ``payload`` as JSON; return the HTTP status (raises on network errors and HTTP >= 400)."""
    import urllib.request

    request = urllib.request.Request(
        url,
        data=json.dumps(payload, default=str).encode(),
        method="POST",
        headers={"Content-Type": "application/json", **headers},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status


def _get_connection(conn_id: str) -> Any | None:
    """The Connection, or None when it is not defined."""
    from airflow.sdk import BaseHook

    try:
        return BaseHook.get_connection(conn_id)
    except Exception:  # AirflowNotFoundException, or no secrets backend answering: log only
        return None


class FailureAlert:
    """``on_failure_callback`` that logs a summary and posts it to the ``conn_id`` webhook if defined."""

    def __init__(
        self, conn_id: str = ALERTS_CONN_ID, get_connection: Callable[[str], Any | None] = _get_connection
    ) -> None:
        self.conn_id = conn_id
        self.get_connection = get_connection

    def __call__(self, context: Mapping[str, Any]) -> dict[str, Any]:
        summary = failure_summary(context)
        text = render(summary)
        log.error("%s", text)
        conn = self.get_connection(self.conn_id)
        if conn is None:
            log.info("no %r Connection: failure logged only", self.conn_id)
            return {**summary, "posted": False}
        try:
            url, headers, timeout = webhook_from_connection(conn)
            status = post_json(url, {"text": text, **summary}, headers, timeout)
        except Exception as exc:  # an alert that cannot be sent must not mask the task's own failure
            log.warning("could not post the failure alert to Connection %r: %s", self.conn_id, exc)
            return {**summary, "posted": False}
        log.info("failure alert posted to Connection %r (HTTP %s)", self.conn_id, status)
        return {**summary, "posted": True}


notify_failure = FailureAlert()
