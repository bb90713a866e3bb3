"""Kill `flywheel train` mid-run with SIGKILL, run it again: it resumes from its last checkpoint in the
same MLflow run and ends exactly like an uninterrupted run (CPU, fixed seeds: tolerance 0)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
import yaml

from pipelines import featurize
from pipelines.common.settings import Settings
from tests.support.data import churn_events, churn_params, write_snapshot

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FLYWHEEL = str(Path(sys.executable).parent / "flywheel")
KILL_AFTER_EPOCH = 2
EPOCHS = 8
QUALITY = (
    "best_valid_pr_auc",
    "best_valid_roc_auc",
    "best_valid_loss",
    "valid_f1",
    "threshold",
    "best_epoch",
    "epochs_run",
)


@pytest.fixture
def prepared(tmp_path) -> tuple[Settings, dict[str, str]]:
    """A featurized workspace whose params.yaml trains for a few seconds on the CPU."""
    settings = Settings.from_env({"FLYWHEEL_HOME": str(tmp_path / "home")})
    params = churn_params(
        train={"epochs": EPOCHS, "patience": EPOCHS, "batch_size": 64, "hidden": [32, 16], "dropout": 0.2}
    )
    write_snapshot(settings.workspace, churn_events(20_000))
    featurize.run(params, None, settings.workspace)
    dumped = params.model_dump(mode="json", by_alias=True)
    (settings.workspace / "params.yaml").write_text(yaml.safe_dump(dumped, sort_keys=False))
    env = {**os.environ, **settings.as_env(), "FLYWHEEL_PARAMS": str(settings.workspace / "params.yaml")}
    return settings, env


def train(settings: Settings, env: dict[str, str]) -> tuple[dict, str]:
    proc = subprocess.run(
        [FLYWHEEL, "train", "--json"],
        cwd=settings.workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def train_and_kill(settings: Settings, env: dict[str, str], after_epoch: int) -> dict:
    """Start `flywheel train`, SIGKILL it once a checkpoint of ``after_epoch`` epochs exists; return it."""
    log = tempfile.TemporaryFile("w+")  # not a pipe: a full pipe would stall the process
    proc = subprocess.Popen(
        [FLYWHEEL, "train", "--json"],
        cwd=settings.workspace,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
        text=True,
    )
    deadline = time.monotonic() + 300
    saved = None
    while proc.poll() is None and time.monotonic() < deadline:
        for path in (settings.home / "checkpoints").glob("*/checkpoint.pt"):
            with contextlib.suppress(FileNotFoundError):  # removed when the run finished
                saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved is not None and saved["epoch"] >= after_epoch:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait(timeout=60)
    log.seek(0)
    tail = log.read()[-3000:]
    assert proc.returncode == -signal.SIGKILL, f"not killed mid-run (exit {proc.returncode}):\n{tail}"
    return saved


def state_dict(settings: Settings) -> dict[str, torch.Tensor]:
    return torch.load(settings.workspace / "models/model/state_dict.pt", weights_only=True)


def test_a_killed_train_resumes_in_the_same_run_and_ends_like_an_uninterrupted_one(prepared):
    import mlflow

    settings, env = prepared
    saved = train_and_kill(settings, env, KILL_AFTER_EPOCH)
    epoch, run_id = saved["epoch"], saved["mlflow_run_id"]
    assert KILL_AFTER_EPOCH <= epoch < EPOCHS

    resumed, log = train(settings, env)
    assert resumed["resumed_from_epoch"] == epoch
    assert f"resuming from the checkpoint after epoch {epoch}" in log
    assert resumed["mlflow_run_id"] == run_id
    assert not Path(resumed["checkpoints"]).exists()  # removed after success
    client = mlflow.MlflowClient(settings.tracking_uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["flywheel.resumed_from_epoch"] == str(epoch)
    for key in ("train_loss", "valid_pr_auc"):  # per-epoch metrics continue, each epoch once
        assert [m.step for m in client.get_metric_history(run_id, key)] == list(range(1, EPOCHS + 1))
    assert len(run.inputs.dataset_inputs) == 2  # training and validation, not logged twice
    resumed_weights = state_dict(settings)

    uninterrupted, _ = train(settings, env)
    assert uninterrupted["resumed_from_epoch"] is None and uninterrupted["mlflow_run_id"] != run_id
    assert {k: resumed["metrics"][k] for k in QUALITY} == {k: uninterrupted["metrics"][k] for k in QUALITY}
    assert all(
        torch.equal(a, b)
        for a, b in zip(resumed_weights.values(), state_dict(settings).values(), strict=True)
    )
