"""A real ``flywheel_training`` run ends with its outcome as the DAG run's note, set and read through the API.

Runs on the live Airflow of ``conftest.py`` (``airflow standalone``), whose tasks have the Connection
``flywheel_airflow_api`` to that same API: **record** puts ``promote.run_note`` of the gate's decision on
its own run with ``PATCH .../dagRuns/<run>`` and the note is read back with ``GET``, as the UI reads it.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from datetime import UTC, datetime

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration]

DAG_ID = "flywheel_training"
OUTCOME = re.compile(r"^v\d+ (promoted|rejected|unchanged)(\b|:)")


def test_a_training_run_ends_with_the_gate_outcome_as_its_note(live_airflow):
    from pipelines.common.lake import safe_run_id

    live = live_airflow
    now = datetime.now(UTC)
    run_id = f"manual__note_{now:%Y%m%dT%H%M%S%f}"
    body = {"dag_run_id": run_id, "logical_date": now.isoformat(), "conf": {"epochs": 1}}
    status, created = live.api("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", body)
    assert status == 200, created
    assert created["note"] is None

    finished = live.wait_for_run(DAG_ID, run_id, timeout=300)
    assert finished["state"] == "success", (
        live.task_states(DAG_ID, run_id),
        live.task_log(DAG_ID, run_id, "record"),
    )

    report = json.loads(
        (live.home / "lake" / "reports" / "runs" / DAG_ID / f"{safe_run_id(run_id)}.json").read_text()
    )
    status, run = live.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{urllib.parse.quote(run_id, safe='')}")
    assert status == 200, run
    assert run["note"] == report["note"], live.task_log(DAG_ID, run_id, "record")
    assert OUTCOME.match(run["note"]), run["note"]
    promotion = report["promotion"]
    assert run["note"].startswith(f"v{promotion['version']} ")
    if promotion.get("difference"):  # judged against a champion: the note carries the gate's interval
        assert "interval [" in run["note"]
