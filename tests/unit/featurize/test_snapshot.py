"""The snapshot stage: the validated window into the workspace; the same bytes when nothing is new."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pandas as pd
import pytest

from pipelines.common.lake import Lake
from pipelines.featurize import snapshot
from pipelines.workspace.paths import EVENTS, WINDOW
from tests.support.data import write_partition

AS_OF = datetime(2025, 1, 30, 12, tzinfo=UTC)  # 30 days: the churn events, 2025-01-01 .. 2025-01-30


def validate(tmp_settings, churn, events: pd.DataFrame, run_id: str, hour: int = 0) -> str:
    """A validated partition of ``events``, written at ``hour`` on 2025-02-01."""
    lake = Lake(tmp_settings.lake_root(churn))
    written_at = datetime(2025, 2, 1, hour, tzinfo=UTC).isoformat()
    return write_partition(lake, "validated", events, run_id, written_at=written_at)


def test_the_window_lands_in_the_workspace_with_its_description(
    tmp_settings, churn, churn_snapshot, tmp_path
):
    first = validate(tmp_settings, churn, churn_snapshot.iloc[:300], "r1")
    second = validate(tmp_settings, churn, churn_snapshot.iloc[250:], "r2", hour=1)  # 50 keys again
    workspace = tmp_path / "workspace"

    summary = snapshot.run(churn, tmp_settings, workspace, as_of=AS_OF)

    written = pd.read_parquet(workspace / EVENTS)
    assert len(written) == summary["rows"] == 400 and written["customer_id"].is_unique
    assert summary["changed"] is True and summary["partitions"] == [first, second]
    meta = json.loads((workspace / WINDOW).read_text())
    assert meta["window_start"] == "2025-01-01T00:00:00+00:00"
    assert meta["window_end"] == "2025-01-31T00:00:00+00:00"
    assert meta["positives"] == int(written["churned"].sum())


def test_a_rerun_on_the_same_events_changes_nothing(tmp_settings, churn, churn_snapshot, tmp_path):
    validate(tmp_settings, churn, churn_snapshot, "r1")
    workspace = tmp_path / "workspace"
    snapshot.run(churn, tmp_settings, workspace, as_of=AS_OF)
    before = (workspace / EVENTS).read_bytes()

    again = snapshot.run(churn, tmp_settings, workspace, as_of=AS_OF)

    assert again["changed"] is False and (workspace / EVENTS).read_bytes() == before


def test_window_days_narrow_the_window(tmp_settings, churn, churn_snapshot, tmp_path):
    validate(tmp_settings, churn, churn_snapshot, "r1")

    summary = snapshot.run(churn, tmp_settings, tmp_path / "workspace", as_of=AS_OF, window_days=3)

    days = pd.read_parquet(tmp_path / "workspace" / EVENTS)["observed_at"].dt.day.unique().tolist()
    assert summary["window_start"] == "2025-01-28T00:00:00+00:00" and sorted(days) == [28, 29, 30]


@pytest.mark.parametrize(
    ("as_of", "window_days", "expected"),
    [
        (datetime(2026, 6, 1, tzinfo=UTC), 30, r"window \[2026-.*sliding.*window_days"),  # after the events
        (datetime(2024, 6, 1, tzinfo=UTC), None, r"window \[2024-.*expanding.*as_of"),  # before them
    ],
)
def test_an_empty_window_names_the_window_and_what_to_do(
    tmp_settings, churn, churn_snapshot, tmp_path, as_of, window_days, expected
):
    validate(tmp_settings, churn, churn_snapshot, "r1")

    with pytest.raises(snapshot.SnapshotError, match=rf"no validated events in the {expected}"):
        snapshot.run(churn, tmp_settings, tmp_path / "workspace", as_of=as_of, window_days=window_days)
    assert not (tmp_path / "workspace" / EVENTS).exists()
