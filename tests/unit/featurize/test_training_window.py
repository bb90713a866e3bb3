"""The training window policy: sliding or expanding, capped by days and rows, newest kept."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pandas as pd
import pytest

from pipelines.common.config import ParamsError, SnapshotConfig, parse_params
from pipelines.common.lake import Lake
from pipelines.featurize import snapshot
from pipelines.featurize.window import (
    Window,
    earliest_event,
    newest_rows,
    select_training_rows,
    training_window,
)
from pipelines.workspace.paths import EVENTS, WINDOW
from tests.support.data import CHURN_SCHEMA, churn_events, churn_params, write_partition

AS_OF = datetime(2025, 3, 10, 15, tzinfo=UTC)
SCHEMA = churn_params().schema


def day(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("cfg", "earliest", "expected"),
    [
        pytest.param(
            {"window": "sliding", "window_days": 7}, None, ("2025-03-04", "2025-03-11"), id="sliding"
        ),
        pytest.param(
            {"window": "sliding", "window_days": 7, "max_days": 2},
            day("2020-01-01"),
            ("2025-03-04", "2025-03-11"),
            id="sliding-ignores-max_days",
        ),
        pytest.param(
            {"window": "expanding"}, day("2024-06-01T13:00"), ("2024-06-01", "2025-03-11"), id="all-history"
        ),
        pytest.param(
            {"window": "expanding", "max_days": 30},
            day("2024-06-01"),
            ("2025-02-09", "2025-03-11"),
            id="expanding-capped-by-days",
        ),
        pytest.param(
            {"window": "expanding", "max_days": 3650},
            day("2024-06-01"),
            ("2024-06-01", "2025-03-11"),
            id="cap-longer-than-history",
        ),
        pytest.param({"window": "expanding"}, None, ("2025-03-10", "2025-03-11"), id="no-history-yet"),
        pytest.param(
            {"window": "expanding"}, day("2025-04-01"), ("2025-03-10", "2025-03-11"), id="history-after"
        ),
    ],
)
def test_the_window_by_policy(cfg, earliest, expected):
    window = training_window(AS_OF, SnapshotConfig(**cfg), earliest)
    assert (window.start, window.end) == (day(expected[0]), day(expected[1]))


@pytest.mark.parametrize(("max_rows", "kept"), [(None, 10), (20, 10), (10, 10), (3, 3), (1, 1)])
def test_max_rows_keeps_the_newest(max_rows, kept):
    events = churn_events(10)
    capped = newest_rows(events, max_rows)
    assert len(capped) == kept
    assert capped["customer_id"].tolist() == events["customer_id"].tolist()[-kept:]


def test_expanding_reaches_back_to_the_first_validated_event_and_caps_rows():
    events = churn_events(400)  # 2025-01-01 .. 2025-01-30
    frames = [events.iloc[:100], events.iloc[100:]]
    cfg = SnapshotConfig(window="expanding", max_rows=50)

    rows, window = select_training_rows(frames, SCHEMA, day("2025-01-30"), cfg)

    assert window.start == day("2025-01-01") and window.end == day("2025-01-31")
    assert rows["customer_id"].tolist() == events["customer_id"].tolist()[-50:]
    assert earliest_event(frames, SCHEMA) == events["observed_at"].min()
    assert earliest_event([], SCHEMA) is None


def test_a_sliding_window_leaves_older_rows_out():
    events = churn_events(400)
    cfg = SnapshotConfig(window="sliding", window_days=5)
    rows, window = select_training_rows([events], SCHEMA, day("2025-01-30"), cfg)
    assert window == Window(day("2025-01-26"), day("2025-01-31"))
    assert rows["observed_at"].min() >= pd.Timestamp(window.start)
    assert len(rows) < len(events)


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("window", "rolling", "'sliding' or 'expanding'"),
        ("max_days", 0, "greater than or equal to 1"),
        ("max_rows", -5, "greater than or equal to 1"),
    ],
)
def test_invalid_window_params_name_the_key(key, value, fragment):
    with pytest.raises(ParamsError) as err:
        parse_params({"schema": CHURN_SCHEMA, "snapshot": {key: value}})
    assert f"snapshot.{key}" in str(err.value) and fragment in str(err.value)


def test_the_snapshot_stage_follows_the_window_policy(tmp_settings, tmp_path):
    params = churn_params(snapshot={"window": "expanding", "max_rows": 120})
    events = churn_events(400)
    lake = Lake(tmp_settings.lake_root(params))
    write_partition(lake, "validated", events, "r1", written_at="2025-02-01T00:00:00+00:00")
    workspace = tmp_path / "workspace"

    summary = snapshot.run(params, tmp_settings, workspace, as_of=day("2025-01-30"))

    written = pd.read_parquet(workspace / EVENTS)
    meta = json.loads((workspace / WINDOW).read_text())
    assert summary["rows"] == len(written) == 120 and meta["window"] == "expanding"
    assert meta["window_start"] == "2025-01-01T00:00:00+00:00"
    assert written["customer_id"].tolist() == events["customer_id"].tolist()[-120:]


def test_window_days_asked_for_a_run_means_a_sliding_window(tmp_settings, tmp_path):
    """The training form's ``window_days`` wins over an expanding ``snapshot.window``."""
    params = churn_params(snapshot={"window": "expanding"})
    write_partition(Lake(tmp_settings.lake_root(params)), "validated", churn_events(400), "r1")

    summary = snapshot.run(
        params, tmp_settings, tmp_path / "workspace", as_of=day("2025-01-30"), window_days=3
    )

    assert summary["window"] == "sliding" and summary["window_start"] == "2025-01-28T00:00:00+00:00"
