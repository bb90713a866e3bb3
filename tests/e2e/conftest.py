"""An isolated Flywheel installation per test: its own params, lake, DVC workspace and MLflow store."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def airflow_db():
    """A migrated Airflow metadata DB (SQLite) with Flywheel's pools."""
    airflow = str(Path(sys.executable).parent / "airflow")
    for args in (["db", "migrate"], ["pools", "set", "gpu", "1", "training"], ["pools", "set", "dvc", "1", "dvc"]):
        proc = subprocess.run([airflow, *args], capture_output=True, text=True, env=os.environ.copy())
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return os.environ["AIRFLOW_HOME"]


@pytest.fixture(scope="session")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    return bag


@dataclass
class Installation:
    home: Path
    params_path: Path
    events: Path

    def params(self):
        from pipelines.common.config import load_params

        return load_params(self.params_path)

    def settings(self):
        from pipelines.common.settings import Settings

        return Settings.from_env()


def make_installation(tmp_path: Path, monkeypatch, params: dict) -> Installation:
    home, events = tmp_path / "home", tmp_path / "events"
    events.mkdir()
    params["ingest"] = {**params.get("ingest", {}), "files": {"path": str(events)}}
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.setenv("FLYWHEEL_HOME", str(home))
    monkeypatch.setenv("FLYWHEEL_PARAMS", str(params_path))
    monkeypatch.setenv("FLYWHEEL_PROJECT", str(ROOT))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
    home.mkdir()
    return Installation(home=home, params_path=params_path, events=events)


@pytest.fixture
def demo_install(tmp_path, monkeypatch) -> Installation:
    """The demo dataset with a short training schedule."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"].update(epochs=4, patience=2, batch_size=256)
    return make_installation(tmp_path, monkeypatch, params)


def run_dag(dagbag, dag_id: str, **kwargs):
    """``dag.test()`` a DAG; return the run and its task states."""
    dag = dagbag.dags[dag_id]
    dag_run = dag.test(**kwargs)
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    return dag_run, states
