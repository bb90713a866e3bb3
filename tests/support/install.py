"""Isolated Flywheel installations for tests: their own params, lake, DVC workspace and MLflow store."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Installation:
    """A private Flywheel home with its params file and the folder its files source reads."""

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
    """Write ``params`` (files source under ``tmp_path/events``) and point the environment at a new home."""
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


def demo_params(**train: object) -> dict:
    """The project's params.yaml as a mapping, with ``train`` keys overridden."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"].update(train)
    return params


def run_dag(dagbag, dag_id: str, **kwargs):
    """``dag.test()`` a DAG; return the run and its task states."""
    assert dag_id in dagbag.dags, f"no DAG {dag_id}; import errors: {dagbag.import_errors}"
    dag = dagbag.dags[dag_id]
    dag_run = dag.test(**kwargs)
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    return dag_run, states


def run_cli(capsys, *args: str) -> tuple[int, dict]:
    """Run a `flywheel` command in-process; return its exit code and its JSON summary."""
    from pipelines import cli

    capsys.readouterr()
    code = cli.main([*args, "--json"])
    return code, json.loads(capsys.readouterr().out.strip().splitlines()[-1])
