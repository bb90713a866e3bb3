"""record's run note: without the flywheel_airflow_api Connection it is not set, and the run never fails."""

from __future__ import annotations


def test_without_api_credentials_the_note_is_not_set(airflow_db, monkeypatch):
    from flywheel_provider.tasks.training import AIRFLOW_API_CONN, set_run_note

    monkeypatch.delenv(f"AIRFLOW_CONN_{AIRFLOW_API_CONN.upper()}", raising=False)
    assert set_run_note("flywheel_training", "manual__2026-01-01T00:00:00+00:00", "v7 promoted") is False
