"""record's run note: without the flywheel_airflow_api Connection it is not set, and the run never fails.

The note set on a real run and read back through the REST API: tests/integration/promote/test_run_note.py.
"""

from __future__ import annotations

import json

import pytest


def test_without_api_credentials_the_note_is_not_set(airflow_db, monkeypatch):
    from flywheel_provider.tasks.training import AIRFLOW_API_CONN, set_run_note

    monkeypatch.delenv(f"AIRFLOW_CONN_{AIRFLOW_API_CONN.upper()}", raising=False)
    assert set_run_note("flywheel_training", "manual__2026-01-01T00:00:00+00:00", "v7 promoted") is False


@pytest.mark.parametrize(
    ("conn", "base"),
    [
        ({"conn_type": "http", "host": "127.0.0.1", "port": 8080}, "http://127.0.0.1:8080"),
        ({"conn_type": "http", "host": "https://airflow.example.com"}, "https://airflow.example.com"),
        ({"conn_type": "http", "host": "airflow", "schema": "https", "port": 443}, "https://airflow:443"),
    ],
)
def test_the_hook_builds_the_api_address_from_the_connection(airflow_db, monkeypatch, conn, base):
    from flywheel_provider.hooks.airflow_api import AirflowApiHook

    monkeypatch.setenv(
        "AIRFLOW_CONN_FLYWHEEL_AIRFLOW_API", json.dumps({**conn, "login": "a", "password": "b"})
    )
    api = AirflowApiHook().get_conn()
    assert (api.base_url, api.username, api.password) == (base, "a", "b")


def test_an_api_that_does_not_answer_leaves_the_note_unset_without_failing(airflow_db, monkeypatch):
    from flywheel_provider.tasks.training import set_run_note

    from tests.support.live_airflow import free_port

    conn = {"conn_type": "http", "host": "127.0.0.1", "port": free_port(), "login": "a", "password": "b"}
    monkeypatch.setenv("AIRFLOW_CONN_FLYWHEEL_AIRFLOW_API", json.dumps(conn))
    monkeypatch.setattr("pipelines.common.airflow_api.RETRIES", 0)
    assert set_run_note("flywheel_training", "manual__2026-01-01T00:00:00+00:00", "v7 promoted") is False
