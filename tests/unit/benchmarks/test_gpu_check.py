"""``make gpu-check``: says so and exits 0 without CUDA; budgets, part sizes and the pytest report."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from benchmarks import gpu_check
from benchmarks.gpu_check import (
    PARTS,
    ROOT,
    TOTAL_BUDGET_S,
    Part,
    junit_counts,
    junit_failures,
    rows_of,
    timeout_for,
)


def test_without_cuda_it_says_so_exits_0_and_writes_nothing(tmp_path):
    results = tmp_path / "results.json"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_check", "--results", str(results)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "no CUDA" in done.stdout and "nothing to check" in done.stdout
    assert not results.exists()


@pytest.mark.parametrize(
    ("remaining", "expected"),
    [
        (500.0, 90.0),  # the whole budget
        (50.0, 50.0),  # what is left, above the minimum
        (30.0, 30.0),  # exactly the minimum
        (29.9, None),  # below it: not started
    ],
)
def test_a_part_gets_its_budget_or_what_is_left(remaining, expected):
    assert timeout_for(Part("p", budget_s=90, min_s=30), remaining) == expected


def test_the_parts_fit_in_eight_minutes():
    assert TOTAL_BUDGET_S <= 480
    assert [p.name for p in PARTS][-1] == "train_gpu_10m"  # the one left out when time runs short
    assert all(p.min_s <= p.budget_s for p in PARTS)


@pytest.mark.parametrize(
    ("name", "rows"),
    [("train_gpu_1m", 1_000_000), ("train_gpu_10m", 10_000_000), ("variants_250k", 250_000), ("ddp_7", 7)],
)
def test_rows_of_a_part(name, rows):
    assert rows_of(name) == rows


REPORT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="1" skipped="0" tests="4">
<testcase classname="tests.unit.train.test_loop" name="test_ok" />
<testcase classname="tests.unit.train.test_loop" name="test_bf16">
<failure message="assert 0.5 &gt; 0.7&#10;more">
trace</failure></testcase>
<testcase classname="tests.unit.train.test_checkpoint" name="test_rng">
<error message="CUDA error">x</error></testcase>
<testcase classname="tests.unit.train.test_loop" name="test_ok2" />
</testsuite></testsuites>"""


def test_the_pytest_report_gives_counts_and_the_failures():
    assert junit_counts(REPORT) == {"tests": 4, "failures": 1, "errors": 1, "skipped": 0}
    assert junit_failures(REPORT) == [
        {
            "test": "tests.unit.train.test_loop::test_bf16",
            "outcome": "failure",
            "message": "assert 0.5 > 0.7",
        },
        {"test": "tests.unit.train.test_checkpoint::test_rng", "outcome": "error", "message": "CUDA error"},
    ]


def test_a_part_past_its_budget_is_killed_with_what_it_started():
    outcome, seconds = gpu_check.spawn(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
            "'import time; time.sleep(60)']); time.sleep(60)",
        ],
        timeout_s=2,
    )
    assert outcome == "timed out" and seconds < 30


@pytest.mark.slow
def test_the_driver_runs_each_part_in_its_own_process_and_saves_after_each(tmp_path, monkeypatch):
    """The whole driver on a CPU: the CUDA tests part runs (its tests skip), the others are out of time."""
    monkeypatch.setattr(gpu_check, "gpu_description", lambda: {"gpu": "test GPU", "gpus": 1})
    monkeypatch.setattr(gpu_check, "PARTS", (Part("cuda_tests", 200, 1), Part("train_gpu_10m", 100, 10_000)))
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"benchmarks": {"kept": {"ratio": 1.0}}}))

    status = gpu_check.check_all(results, budget_s=300)

    saved = json.loads(results.read_text())
    assert status == 0 and saved["benchmarks"] == {"kept": {"ratio": 1.0}}
    check = saved["gpu_check"]
    assert check["gpu"] == "test GPU" and check["machine"]["cpu_count"] >= 1
    tests = check["parts"]["cuda_tests"]
    assert tests["outcome"] == "ok" and tests["counts"]["tests"] >= 5 and tests["failed"] == []
    assert check["parts"]["train_gpu_10m"]["outcome"].startswith("skipped: ")
