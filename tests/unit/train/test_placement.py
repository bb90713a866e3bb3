"""Placement: the device, the batch size, bf16, resident tensors and the training module per device."""

from __future__ import annotations

import pytest
import torch

from pipelines.train.distributed import SINGLE
from pipelines.train.network import TabularNet
from pipelines.train.placement import Placement, place, plan_placement, select_device, training_module
from tests.support.data import churn_params, training_data


def test_select_device_honours_cpu():
    assert select_device("cpu").type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_select_device_falls_back_to_cpu_without_cuda(caplog):
    assert select_device("cuda").type == "cpu"
    assert "CUDA is not available" in caplog.text


GB = 1 << 30


@pytest.mark.parametrize(
    ("device", "data_bytes", "free_bytes", "bf16", "expected"),
    [
        ("cpu", 10 * GB, None, None, (128, False, True)),
        ("cuda", 1 * GB, 80 * GB, True, (4096, True, True)),
        ("cuda", 50 * GB, 80 * GB, True, (4096, True, False)),
        ("cuda", 1 * GB, 80 * GB, False, (4096, False, True)),
    ],
    ids=["cpu-batch-fp32", "cuda-resident-bf16", "cuda-too-big-for-free-memory", "cuda-without-bf16"],
)
def test_plan_placement(device, data_bytes, free_bytes, bf16, expected):
    cfg = churn_params(train={"batch_size": 128, "gpu_batch_size": 4096}).train
    placement = plan_placement(cfg, torch.device(device), data_bytes, free_bytes, bf16)
    assert (placement.batch_size, placement.bf16, placement.resident) == expected
    assert placement.compile is False


def test_placement_describes_itself_in_json_values():
    described = Placement(torch.device("cpu"), 64).describe()
    assert described == {"device": "cpu", "batch_size": 64, "bf16": False, "resident": True, "compile": False}


def test_place_keeps_resident_data_on_the_device():
    data, _ = training_data(300)
    placed = place(data, Placement(torch.device("cpu"), 64))
    assert placed.train_numeric.device.type == "cpu" and torch.equal(placed.train_target, data.train_target)


def test_one_process_trains_the_model_itself():
    model = TabularNet(2, (3,), hidden=(4,))
    assert training_module(model, Placement(torch.device("cpu"), 64), SINGLE) is model
