"""Each DVC stage depends on the exact params it reads: a schedule or a drift setting reruns nothing."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from pipelines import workspace
from pipelines.common.config import parse_params
from tests.support.install import ROOT, run_cli

pytestmark = pytest.mark.integration


def dvc_status(settings) -> dict:
    """``dvc status --json`` of the workspace: the stages DVC would rerun, with why."""
    proc = subprocess.run(
        [workspace.dvc_executable(), "status", "--json"],
        cwd=settings.workspace,
        env=workspace.command_env(settings),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout or "{}")


def test_every_param_key_of_dvc_yaml_is_in_the_synced_params():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    synced = parse_params(yaml.safe_load((ROOT / "params.yaml").read_text())).model_dump(
        mode="json", by_alias=True
    )
    for name, stage in stages.items():
        for key in stage.get("params", []):
            node = synced
            for part in key.split("."):
                assert isinstance(node, dict) and part in node, f"dvc.yaml stage {name}: {key} is not a param"
                node = node[part]


def test_only_the_keys_a_stage_reads_rerun_it(trained, capsys):
    code, summary = run_cli(capsys, "repro")
    assert code == 0, summary
    settings = trained.settings()
    workspace.sync(
        settings,
        {"schedules.training": "0 5 * * *", "drift.column_threshold": 0.3, "promote.min_improvement": 0.01},
    )
    assert set(dvc_status(settings)) <= {"snapshot"}, "only the always-changed snapshot may be out of date"
    workspace.sync(settings, {"train.epochs": 2})
    changed = dvc_status(settings)
    assert "train" in changed and "featurize" not in changed, changed
    assert "train.epochs" in json.dumps(changed["train"])
