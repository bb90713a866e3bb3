"""MlflowRegistryHook and MlflowRegistryOperator on a real (SQLite) MLflow store and by Connection id."""

from __future__ import annotations

import json

import pytest
from flywheel_provider.hooks.mlflow_registry import MlflowRegistryHook
from flywheel_provider.operators.mlflow_registry import MlflowRegistryOperator


@pytest.fixture
def store(tmp_path, monkeypatch, repo_root):
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FLYWHEEL_PARAMS", str(repo_root / "params.yaml"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("AIRFLOW_CONN_FLYWHEEL_MLFLOW", raising=False)
    return tmp_path


def test_the_connection_names_the_tracking_server(store, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_FLYWHEEL_MLFLOW",
        json.dumps({"conn_type": "http", "host": "mlflow", "port": 5000, "schema": "http"}),
    )
    assert MlflowRegistryHook().settings().tracking_uri == "http://mlflow:5000"


def test_status_of_an_empty_registry(store):
    report = MlflowRegistryOperator(task_id="operate", action="status").execute(context={})
    assert report["versions"] == [] and report["aliases"] == {}
    assert report["model_name"] == MlflowRegistryHook().model_name


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("", "rollback needs a reason"),
        ("alerts on v7", "has no 'previous_champion' alias to roll back to"),
    ],
)
def test_a_rollback_that_cannot_succeed_fails_without_retries(store, reason, message):
    from airflow.sdk.exceptions import AirflowFailException

    operator = MlflowRegistryOperator(task_id="operate", action="rollback", reason=reason)
    with pytest.raises(AirflowFailException, match=message):
        operator.execute(context={})


def test_an_unknown_action_is_refused(store):
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="'promote' is not one of status, rollback"):
        MlflowRegistryOperator(task_id="operate", action="promote").execute(context={})


def test_an_unreachable_server_fails_so_the_task_retries(store, monkeypatch):
    from pipelines.common.tracking import TrackingUnavailable

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    with pytest.raises(TrackingUnavailable, match="http://127.0.0.1:9 is unreachable"):
        MlflowRegistryOperator(task_id="operate", action="status").execute(context={})
