"""A real DVC workspace (git repository, local remote) and a real MLflow store, per module."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.e2e.conftest import ROOT, Installation


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """An installation with validated demo events and a workspace where `flywheel repro` ran once."""
    from pipelines import cli
    from pipelines.demo import generator as produce

    tmp = tmp_path_factory.mktemp("install")
    home, events = tmp / "home", tmp / "events"
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["ingest"]["files"]["path"] = str(events)
    params["train"].update(epochs=3, batch_size=256, patience=2)
    params_path = tmp / "params.yaml"
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    env = {"FLYWHEEL_HOME": str(home), "FLYWHEEL_PARAMS": str(params_path), "FLYWHEEL_PROJECT": str(ROOT),
           "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}"}
    mp = pytest.MonkeyPatch()
    for key, value in env.items():
        mp.setenv(key, value)
    produce.produce(str(events), rows=4000, seed=21)
    for command in (["ingest"], ["validate"]):
        assert cli.main([*command, "--json"]) == 0
    yield Installation(home=home, params_path=params_path, events=events)
    mp.undo()


def run_cli(capsys, *args: str) -> tuple[int, dict]:
    """Run a `flywheel` command in-process; return its exit code and its JSON summary."""
    from pipelines import cli

    capsys.readouterr()
    code = cli.main([*args, "--json"])
    return code, json.loads(capsys.readouterr().out.strip().splitlines()[-1])
