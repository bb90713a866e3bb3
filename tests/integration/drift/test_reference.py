"""Finding the champion's training data through its lineage, with a real DVC cache and a real MLflow store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.support.install import ROOT

pytestmark = pytest.mark.integration


@pytest.fixture
def install(tmp_path, monkeypatch):
    from pipelines.common.config import load_params
    from pipelines.common.settings import Settings

    home = tmp_path / "home"
    params_path = tmp_path / "params.yaml"
    params_path.write_text((ROOT / "params.yaml").read_text())
    for key, value in {
        "FLYWHEEL_HOME": str(home),
        "FLYWHEEL_PARAMS": str(params_path),
        "FLYWHEEL_PROJECT": str(ROOT),
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("FLYWHEEL_DVC_REMOTE", raising=False)
    home.mkdir()
    return load_params(params_path), Settings.from_env()


def dvc(cwd: Path, *args: str) -> None:
    exe = Path(sys.executable).parent / "dvc"
    proc = subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, env=os.environ.copy())
    assert proc.returncode == 0, proc.stdout + proc.stderr


def champion_with_tags(settings, name: str, tags: dict[str, str]) -> None:
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(settings.tracking_uri)
    with mlflow.start_run(tags=tags) as run:
        mlflow.log_text("x", "model/placeholder.txt")
    client = MlflowClient(settings.tracking_uri)
    client.create_registered_model(name)
    version = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    client.set_registered_model_alias(name, "champion", version.version)


def test_split_md5_from_dvc_add_finds_train_parquet_in_the_cache_and_the_remote(install, tmp_path):
    from pipelines.drift.reference import load_split
    from pipelines.workspace.paths import content_roots

    params, settings = install
    ws = settings.workspace
    ws.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=ws, check=True)
    dvc(ws, "init", "-q")
    dvc(ws, "remote", "add", "-d", "store", str(settings.dvc_remote))
    rows = pd.DataFrame({"amount": [1.5, 2.5], "device": ["web", "pos"]})
    (ws / "data" / "split").mkdir(parents=True)
    rows.to_parquet(ws / "data" / "split" / "train.parquet", index=False)
    rows.head(1).to_parquet(ws / "data" / "split" / "test.parquet", index=False)
    dvc(ws, "add", "-q", "data/split")
    md5 = yaml.safe_load((ws / "data" / "split.dvc").read_text())["outs"][0]["md5"]
    assert md5.endswith(".dir")
    frame, source = load_split(content_roots(settings), md5)
    assert frame.equals(rows) and "/.dvc/cache/files/md5/" in source

    settings.dvc_remote.mkdir(parents=True)
    dvc(ws, "push", "-q")
    subprocess.run(
        ["rm", "-rf", str(ws / ".dvc" / "cache")], check=True
    )  # as after `dvc gc` or a fresh clone
    frame, source = load_split(content_roots(settings), md5)
    assert frame.equals(rows) and source.startswith(str(settings.dvc_remote))


def test_no_champion_is_a_clear_error(install):
    from pipelines.drift.reference import NoChampion, find_reference

    params, settings = install
    with pytest.raises(NoChampion, match=r"model 'card-fraud' has no 'champion' alias .*expected a trained"):
        find_reference(params, settings)


def test_a_champion_without_lineage_or_with_lost_data_is_a_clear_error(install):
    from pipelines.drift.reference import ReferenceNotFound, find_reference

    params, settings = install
    champion_with_tags(settings, params.promote.model_name, {})
    with pytest.raises(ReferenceNotFound, match="has no 'flywheel.dvc.split_md5' tag"):
        find_reference(params, settings)


def test_lost_reference_data_names_what_was_tried(install):
    from pipelines.drift.reference import ReferenceNotFound, find_reference

    params, settings = install
    champion_with_tags(settings, params.promote.model_name, {"flywheel.dvc.split_md5": "ab" * 16 + ".dir"})
    with pytest.raises(
        ReferenceNotFound, match=r"in neither the cache nor the remote; tried \[.*\.dvc/cache"
    ):
        find_reference(params, settings)


def test_flywheel_drift_without_a_champion_exits_with_the_reason(install, capsys):
    from pipelines import cli

    assert cli.main(["drift", "--json"]) == 2
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["ok"] is False and out["command"] == "drift" and "no 'champion' alias" in out["error"]
