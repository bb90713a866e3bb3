"""``airflow backfill create`` over three dates: one independent run per date.

A cleared date re-runs identically. Runs against the live Airflow of ``conftest.py`` (the
scheduler executes backfill runs). Each training run snapshots the window ending on its logical
date, so the three runs train on three different windows; clearing the middle one and running it
again gives the same ``dvc.lock`` (same snapshot bytes, same features and model, restored by DVC
from its run cache) and the same model version, with nothing registered twice.
"""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta

import pytest
import yaml

pytestmark = [pytest.mark.slow, pytest.mark.integration]

DAG_ID = "flywheel_training"


def git(workspace, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=workspace, capture_output=True, text=True, check=True).stdout


def commit_of(workspace, run_id: str) -> str:
    """The workspace commit that the ``record`` task made for a run (its subject names the run)."""
    for line in git(workspace, "log", "--format=%H %s").splitlines():
        sha, subject = line.split(" ", 1)
        if subject.startswith(f"{DAG_ID} {run_id}:"):
            return sha
    raise AssertionError(f"no workspace commit for {run_id}:\n{git(workspace, 'log', '--oneline')}")


def lock_at(workspace, rev: str) -> dict:
    return yaml.safe_load(git(workspace, "show", f"{rev}:dvc.lock"))


def report(live, run_id: str) -> dict:
    from pipelines.common.lake import safe_run_id

    # run reports live in the lake (storage.root: null, so under the home)
    folder = live.home / "lake" / "reports" / "runs" / DAG_ID
    return json.loads((folder / f"{safe_run_id(run_id)}.json").read_text())


def test_backfill_three_dates_then_rerun_one_identically(live_airflow):
    live = live_airflow
    workspace = live.home / "workspace"
    days = [live.today - timedelta(days=n) for n in (5, 4, 3)]
    live.cli(
        "airflow",
        "backfill",
        "create",
        "--dag-id",
        DAG_ID,
        "--from-date",
        days[0].date().isoformat(),
        "--to-date",
        (days[-1] + timedelta(hours=3)).isoformat(),
        "--max-active-runs",
        "1",
        "--dag-run-conf",
        json.dumps({"window_days": 3, "epochs": 1}),
    )

    backfills = [r for r in live.runs(DAG_ID) if r["run_type"] == "backfill"]
    assert [r["logical_date"][:10] for r in backfills] == [d.date().isoformat() for d in days]
    for run in backfills:
        finished = live.wait_for_run(DAG_ID, run["dag_run_id"], timeout=240)
        assert finished["state"] == "success", live.task_states(DAG_ID, run["dag_run_id"])

    # One independent run per date: each snapshot is the 3-day window ending on its own logical date.
    windows, snapshots = [], set()
    for day, run in zip(days, backfills, strict=True):
        commit = commit_of(workspace, run["dag_run_id"])
        window = json.loads(git(workspace, "show", f"{commit}:data/snapshot/window.json"))
        assert window["window_end"][:10] == (day + timedelta(days=1)).date().isoformat()
        assert window["window_start"][:10] == (day - timedelta(days=2)).date().isoformat()
        windows.append(window)
        snapshots.add(lock_at(workspace, commit)["stages"]["featurize"]["deps"][0]["md5"])
        assert report(live, run["dag_run_id"])["overrides"]["snapshot.as_of"][:10] == day.date().isoformat()
    assert len(snapshots) == 3, "three dates, three different snapshots"

    # Clear the middle date and run it again: the same outputs, nothing registered twice.
    middle = backfills[1]["dag_run_id"]
    first = report(live, middle)
    first_lock = lock_at(workspace, commit_of(workspace, middle))
    status, body = live.api(
        "POST",
        f"/api/v2/dags/{DAG_ID}/clearTaskInstances",
        {"dag_run_id": middle, "dry_run": False, "only_failed": False, "reset_dag_runs": True},
    )
    assert status == 200, body
    rerun_state = live.wait_for_run(DAG_ID, middle, timeout=240)
    assert rerun_state["state"] == "success", live.task_states(DAG_ID, middle)

    again = report(live, middle)
    assert lock_at(workspace, "HEAD") == first_lock  # same snapshot, features, model and metrics hashes
    assert json.loads((workspace / "data/snapshot/window.json").read_text()) == windows[1]
    assert again["stages"]["featurize"] in ("skipped", "restored")
    assert again["stages"]["train"] in ("skipped", "restored")
    assert again["promotion"]["version"] == first["promotion"]["version"]
    assert again["promotion"]["registered_now"] is False
    assert again["metrics"] == first["metrics"]
