"""The git branch a training run hands its workspace on through."""

from __future__ import annotations

import subprocess

import pytest

from pipelines.workspace import run_branch


@pytest.mark.parametrize(
    ("run_id", "branch"),
    [
        ("manual__2026-11-28T10:00:00+00:00", "runs/manual__2026-11-28T10-00-00-00-00"),
        (
            "asset_triggered__2026-11-28T10:00:00.123456+00:00",
            "runs/asset_triggered__2026-11-28T10-00-00.123456-00-00",
        ),
        ("scheduled__2026-01-01T00:00:00+00:00", "runs/scheduled__2026-01-01T00-00-00-00-00"),
        ("a b~c^d:e?f*g[h\\i", "runs/a-b-c-d-e-f-g-h-i"),
    ],
)
def test_a_run_id_becomes_a_valid_branch_name(run_id, branch):
    assert run_branch(run_id) == branch
    assert subprocess.run(["git", "check-ref-format", f"refs/heads/{branch}"]).returncode == 0
