"""docs/custom-model.md, followed literally: a network from outside the package trains, is tracked,
promoted and reproduced with the same metrics; a change of its source reruns train; a bad one is named.

The guide's marked blocks (``<!-- doc-test: ... -->``) are applied as it says: ``create`` writes a file
of the team's package in a folder outside the project (put on ``PYTHONPATH``), ``params`` merges a
block into the installation's ``params.yaml``, ``run`` runs each ``flywheel`` command line.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys

import pytest
import yaml
from mlflow import MlflowClient

from tests.support.install import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GUIDE = ROOT / "docs" / "custom-model.md"
STEP = re.compile(r"<!-- doc-test: (?P<action>\w+)(?: (?P<arg>[^\n]*?))? -->\n```\w*\n(?P<body>.*?)```", re.S)


def guide_steps() -> list[tuple[str, str, str]]:
    """``(action, argument, body)`` of every marked block, in the guide's order."""
    return [(m["action"], (m["arg"] or "").strip(), m["body"]) for m in STEP.finditer(GUIDE.read_text())]


def cli_json(*args: str) -> tuple[int, dict]:
    """Run a ``flywheel`` command in-process; its exit code and JSON summary."""
    from pipelines import cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main([*args, "--json"])
    return code, json.loads(out.getvalue().strip().splitlines()[-1])


def merge(base: dict, extra: dict) -> dict:
    """``extra`` over ``base``, section by section."""
    return {**base, **{k: {**base.get(k, {}), **v} if isinstance(v, dict) else v for k, v in extra.items()}}


@pytest.fixture(scope="module")
def followed(trained, tmp_path_factory) -> dict:
    """The guide applied to the installation: the team's code, the params block, every command's result."""
    team = tmp_path_factory.mktemp("team-code")
    mp = pytest.MonkeyPatch()
    mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(team), os.environ.get("PYTHONPATH")])))
    mp.syspath_prepend(str(team))
    results: dict[str, tuple[int, dict]] = {}
    for action, arg, body in guide_steps():
        if action == "create":
            (team / arg).parent.mkdir(parents=True, exist_ok=True)
            (team / arg).write_text(body)
        elif action == "params":
            params = merge(yaml.safe_load(trained.params_path.read_text()), yaml.safe_load(body))
            trained.params_path.write_text(yaml.safe_dump(params, sort_keys=False))
        elif action == "run":
            for line in body.strip().splitlines():
                command = line.split()
                assert command[0] == "flywheel", line
                results[" ".join(command[1:])] = cli_json(*command[1:])
                if command[1:] == ["repro"]:  # as trained: a later failing run may remove models/model
                    model_json = (trained.settings().workspace / "models/model/model.json").read_text()
                    # ... and a later test's factory may be synced over the copied source
                    copied = (trained.settings().workspace / "code" / "model_factory.py").read_text()
    yield {
        "team": team,
        "results": results,
        "install": trained,
        "model_json": json.loads(model_json),
        "copied_source": copied,
    }
    mp.undo()


def test_the_guide_trains_tracks_and_promotes_the_custom_network(followed):
    code, out = followed["results"]["repro"]
    assert code == 0, out
    assert out["stages"]["train"] == "ran" and out["promotion"]["promoted"] is True, out
    install = followed["install"]
    arch = followed["model_json"]["architecture"]
    assert arch["factory"] == "team_models.tabular:residual_mlp"
    assert arch["model_params"] == {"width": 32, "blocks": 2, "dropout": 0.1}
    assert arch["feature_spec"]["task"] == "binary" and arch["feature_spec"]["output_size"] == 1
    client = MlflowClient(install.settings().tracking_uri)
    version = client.get_model_version_by_alias(install.params().promote.model_name, "champion")
    tags = client.get_run(version.run_id).data.tags
    assert tags["flywheel.model"] == "team_models.tabular:residual_mlp"
    assert len(tags["flywheel.model.source_sha256"]) == 64
    copied = followed["copied_source"]
    assert copied.endswith((followed["team"] / "team_models" / "tabular.py").read_text())


def test_lineage_and_reproduce_give_the_same_metrics(followed):
    code, chain = followed["results"]["lineage champion"]
    assert code == 0 and chain["workspace_commit"], chain
    code, out = followed["results"]["reproduce champion"]
    assert code == 0, out
    assert out["reproduced_run"] != out["original_run"]
    for metric in ("roc_auc", "pr_auc"):
        assert abs(out["metrics"][metric]["difference"]) < 1e-6, out["metrics"]


def test_the_logged_model_loads_where_the_team_package_is_not_installed(followed, tmp_path):
    install = followed["install"]
    workspace = install.settings().workspace
    rows = tmp_path / "rows.parquet"
    import pandas as pd

    features = list(install.params().schema.feature_names)
    pd.read_parquet(workspace / "data" / "split" / "test.parquet", columns=features).head(20).to_parquet(rows)
    script = (
        "import importlib.util, json, mlflow, pandas as pd\n"
        "assert importlib.util.find_spec('team_models') is None, 'team_models is importable already'\n"
        f"model = mlflow.pyfunc.load_model('models:/{install.params().promote.model_name}@champion')\n"
        f"out = model.predict(pd.read_parquet({str(rows)!r}))\n"
        "print(json.dumps({'columns': list(out.columns), 'rows': len(out), 'p': out.probability.tolist()}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["columns"] == ["probability", "label"] and out["rows"] == 20
    assert all(0 < p < 1 for p in out["p"])


def test_editing_the_factory_reruns_train(followed):
    from pipelines import workspace

    install = followed["install"]
    settings = install.settings()
    source = followed["team"] / "team_models" / "tabular.py"
    original = source.read_text()

    def train_status() -> str:
        workspace.sync(settings)
        proc = subprocess.run(
            [workspace.dvc_executable(), "status", "train"],
            cwd=settings.workspace,
            env=workspace.command_env(settings),
            capture_output=True,
            text=True,
            check=True,
        )
        return proc.stdout

    assert "code/model_factory.py" not in train_status()
    try:
        source.write_text(original.replace("blocks of Linear-ReLU", "blocks of Linear and ReLU"))
        assert "modified:" in (status := train_status()) and "code/model_factory.py" in status, status
    finally:
        source.write_text(original)
    assert "code/model_factory.py" not in train_status()


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("team_models.nowhere:residual_mlp", "cannot import module 'team_models.nowhere'"),
        ("team_models.tabular:missing", "has no callable 'missing'"),
    ],
)
def test_a_wrong_factory_fails_train_naming_it(followed, model, expected):
    code, out = cli_json("repro", "--set", f"train.model={model}")
    assert code == 2, out
    assert f"train.model = {model!r}" in out["error"] and expected in out["error"], out["error"][-2000:]
