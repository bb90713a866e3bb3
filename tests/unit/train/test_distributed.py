"""DDP: how many processes, the torchrun command and its worker, the single-process group, a real gloo run."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pipelines import featurize
from pipelines.common.settings import Settings
from pipelines.train import run
from pipelines.train.distributed import SINGLE, Group, processes_for, torchrun_argv, worker_args
from pipelines.train.stage import WORKER_MODULE
from tests.support.data import churn_events, churn_params, write_snapshot
from tests.support.install import ROOT


@pytest.mark.parametrize(
    ("train_cfg", "cuda_devices", "expected"),
    [
        ({"devices": 1}, 8, 1),
        ({"devices": 4}, 8, 4),
        ({"devices": 4}, 2, 2),
        ({"devices": 2}, 0, 2),
        ({"devices": 2, "device": "cpu"}, 8, 2),
    ],
    ids=["one", "four-of-eight-gpus", "capped-by-gpus", "gloo-without-cuda", "gloo-when-cpu-asked"],
)
def test_processes_for(train_cfg, cuda_devices, expected):
    assert processes_for(churn_params(train=train_cfg).train, cuda_devices) == expected


def test_torchrun_argv_relaunches_the_worker_module():
    argv = torchrun_argv(
        WORKER_MODULE, 2, Path("/ws"), Path("/tmp/p.yaml"), Path("/tmp/s.json"), python="/venv/python"
    )
    assert argv == [
        "/venv/python",
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        "-m",
        "pipelines.train.worker",
        "--workspace",
        "/ws",
        "--params",
        "/tmp/p.yaml",
        "--summary",
        "/tmp/s.json",
    ]
    assert worker_args(argv[7:]) == argparse.Namespace(
        workspace=Path("/ws"), params=Path("/tmp/p.yaml"), summary=Path("/tmp/s.json")
    )


def test_the_worker_module_exists_and_the_launcher_does_not_import_the_stage():
    import importlib.util

    assert importlib.util.find_spec(WORKER_MODULE) is not None
    code = "import sys, pipelines.train.distributed; print('pipelines.train.stage' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_single_process_group_is_a_no_op():
    value = torch.tensor(3.0)
    assert SINGLE.is_main and not SINGLE.distributed and SINGLE.device == torch.device("cpu")
    assert SINGLE.agree(True) is True and SINGLE.mean(value) is value and SINGLE.gather("x") == ["x"]


def test_a_group_of_two_names_its_device_by_backend():
    assert Group(rank=1, world_size=2, backend="gloo").device == torch.device("cpu")
    assert Group(rank=1, world_size=2, local_rank=1, backend="nccl").device == torch.device("cuda", 1)
    assert not Group(rank=1, world_size=2).is_main


@pytest.mark.slow
def test_devices_2_trains_with_ddp_under_torchrun_on_cpu(tmp_path, monkeypatch):
    """`train.devices: 2` without CUDA: two gloo processes; rank 0 alone logs and writes."""
    import mlflow

    settings = Settings.from_env({"FLYWHEEL_HOME": str(tmp_path)})
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.tracking_uri)
    cfg = {"epochs": 3, "patience": 3, "batch_size": 128, "hidden": [16, 8], "devices": 2}
    params = churn_params(train=cfg)
    write_snapshot(settings.workspace, churn_events(3000))
    featurize.run(params, None, settings.workspace)

    summary = run(params, settings, settings.workspace)

    assert summary["world_size"] == 2 and summary["resumed_from_epoch"] is None
    assert summary["n_train"] == 2100 and summary["metrics"]["epochs_run"] == 3
    assert summary["metrics"]["best_valid_roc_auc"] > 0.7
    meta = json.loads((settings.workspace / "models/model/model.json").read_text())
    assert meta["world_size"] == 2 and meta["mlflow_run_id"] == summary["mlflow_run_id"]
    client = mlflow.MlflowClient(settings.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("flywheel").experiment_id])
    assert [r.info.run_id for r in runs] == [summary["mlflow_run_id"]]  # one run: rank 0's
    assert [m.step for m in client.get_metric_history(summary["mlflow_run_id"], "train_loss")] == [1, 2, 3]
    assert not Path(summary["checkpoints"]).exists()
