"""The failure callback: a readable summary, posted to the flywheel_alerts webhook when it exists."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace

import pytest
from flywheel_provider.callbacks import ALERTS_CONN_ID, FailureAlert, failure_summary, last_line, render


def context(exception=None) -> dict:
    ti = SimpleNamespace(
        dag_id="flywheel_training",
        task_id="train",
        run_id="manual__2026-11-21",
        try_number=2,
        max_tries=2,
        log_url="http://localhost:8080/dags/flywheel_training/x",
    )
    return {"task_instance": ti, "exception": exception}


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ValueError("first line\n\n  the real reason  \n"), "ValueError: the real reason"),
        (RuntimeError(""), "RuntimeError"),
        (None, "no exception recorded (the task was marked failed, killed or timed out)"),
        ("a plain message", "a plain message"),
    ],
)
def test_last_line(exc, expected):
    assert last_line(exc) == expected


def test_summary_names_dag_task_run_try_error_and_log():
    summary = failure_summary(context(KeyError("window_days")))
    assert summary == {
        "dag_id": "flywheel_training",
        "task_id": "train",
        "run_id": "manual__2026-11-21",
        "try_number": 2,
        "max_tries": 2,
        "error": "KeyError: 'window_days'",
        "log_url": "http://localhost:8080/dags/flywheel_training/x",
    }
    assert render(summary) == (
        "Flywheel task failed: dag=flywheel_training task=train run=manual__2026-11-21 "
        "try=2 of 3: KeyError: 'window_days' — log: "
        "http://localhost:8080/dags/flywheel_training/x"
    )


def test_without_a_connection_it_only_logs(caplog):
    alert = FailureAlert(get_connection=lambda conn_id: None)
    with caplog.at_level("INFO", logger="flywheel_provider.callbacks"):
        result = alert(context(ValueError("boom")))
    assert result["posted"] is False
    assert "Flywheel task failed: dag=flywheel_training task=train" in caplog.text
    assert f"no '{ALERTS_CONN_ID}' Connection" in caplog.text


@pytest.fixture
def webhook():
    """A local HTTP server that records what is posted to it."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"path": self.path, "headers": dict(self.headers), "json": json.loads(body)})
            self.send_response(204 if self.path == "/hook" else 500)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", received
    server.shutdown()


def test_posts_the_summary_to_the_connection(webhook, monkeypatch):
    url, received = webhook
    monkeypatch.setenv(
        "AIRFLOW_CONN_FLYWHEEL_ALERTS",
        json.dumps(
            {
                "conn_type": "http",
                "host": url,
                "extra": {"endpoint": "hook", "headers": {"X-Flywheel": "yes"}},
            }
        ),
    )
    result = FailureAlert()(context(ValueError("snapshot is empty")))
    assert result["posted"] is True
    [post] = received
    assert post["path"] == "/hook" and post["headers"]["X-Flywheel"] == "yes"
    assert (
        post["json"]["dag_id"] == "flywheel_training"
        and post["json"]["error"] == "ValueError: snapshot is empty"
    )
    assert post["json"]["text"].startswith("Flywheel task failed: dag=flywheel_training task=train")


def test_a_failing_webhook_is_logged_not_raised(webhook, monkeypatch, caplog):
    url, received = webhook
    monkeypatch.setenv(
        "AIRFLOW_CONN_FLYWHEEL_ALERTS", json.dumps({"conn_type": "http", "host": url + "/broken"})
    )
    with caplog.at_level("WARNING", logger="flywheel_provider.callbacks"):
        result = FailureAlert()(context(ValueError("boom")))
    assert result["posted"] is False and len(received) == 1
    assert "could not post the failure alert" in caplog.text
