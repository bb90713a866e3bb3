"""The window of validated events: the right days, each key once, a stable order, identical bytes."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from pipelines.common.config import parse_params
from pipelines.common.io import parquet_bytes
from pipelines.common.lake import Lake
from pipelines.featurize.window import Window, read_validated, select_window
from tests.support.data import write_partition

SCHEMA = parse_params(
    {
        "schema": {
            "name": "sensors",
            "key": "reading_id",
            "event_time": "taken_at",
            "target": "faulty",
            "columns": [
                {"name": "temperature", "type": "float"},
                {"name": "site", "type": "category", "categories": ["a", "b"]},
            ],
        }
    }
).schema


def frame(rows):
    out = pd.DataFrame(rows, columns=["reading_id", "taken_at", "temperature", "site", "faulty", "_origin"])
    out["taken_at"] = pd.to_datetime(out["taken_at"], utc=True)
    return out


def test_window_covers_whole_days_ending_on_as_of():
    window = Window.ending_on(datetime(2026, 11, 21, 15, 30, tzinfo=UTC), days=2)
    assert window.start == datetime(2026, 11, 20, tzinfo=UTC)
    assert window.end == datetime(2026, 11, 22, tzinfo=UTC)


def test_select_window_filters_dedups_and_sorts():
    first = frame(
        [
            ["r2", "2026-11-20T10:00:00Z", 1.0, "a", 0, "f:1"],
            ["r1", "2026-11-20T10:00:00Z", 2.0, "b", 1, "f:2"],
            ["old", "2026-11-01T00:00:00Z", 3.0, "a", 0, "f:3"],
        ]
    )
    second = frame(
        [
            ["r1", "2026-11-20T10:00:00Z", 9.0, "b", 1, "g:1"],
            ["r3", "2026-11-21T23:59:59Z", 4.0, "a", 0, "g:2"],
            ["late", "2026-11-22T00:00:00Z", 5.0, "a", 0, "g:3"],
        ]
    )
    window = Window.ending_on(datetime(2026, 11, 21, tzinfo=UTC), days=2)
    events = select_window([first, second], SCHEMA, window)
    assert list(events["reading_id"]) == ["r1", "r2", "r3"]
    assert events.loc[events["reading_id"] == "r1", "temperature"].item() == 2.0  # the first copy wins
    assert "_origin" not in events.columns


@pytest.mark.parametrize("days", [1, 30])
def test_snapshot_bytes_are_deterministic(days):
    events = frame([["r1", "2026-11-20T10:00:00Z", 2.0, "b", 1, "x"]])
    selected = select_window([events], SCHEMA, Window.ending_on(datetime(2026, 11, 21, tzinfo=UTC), days))
    assert parquet_bytes(selected) == parquet_bytes(selected.copy())


def test_no_frames_gives_empty_window():
    assert select_window([], SCHEMA, Window.ending_on(datetime(2026, 11, 21, tzinfo=UTC), 3)).empty


def test_validated_partitions_are_read_in_the_order_they_were_written(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    later = frame([["r1", "2026-11-20T10:00:00Z", 9.0, "b", 1, "g:1"]])
    earlier = frame([["r1", "2026-11-20T10:00:00Z", 2.0, "b", 1, "f:1"]])
    write_partition(lake, "validated", later, "a-run", written_at="2026-11-21T02:00:00+00:00")
    write_partition(lake, "validated", earlier, "b-run", written_at="2026-11-21T01:00:00+00:00")
    write_partition(lake, "landing", earlier, "c-run")  # not validated: never read

    frames, partitions = read_validated(lake)

    assert [p.rsplit("/", 1)[-1] for p in partitions] == ["run=b-run", "run=a-run"]
    assert [f["temperature"].item() for f in frames] == [2.0, 9.0]
    window = Window.ending_on(datetime(2026, 11, 21, tzinfo=UTC), 2)
    assert select_window(frames, SCHEMA, window)["temperature"].tolist() == [2.0]  # the earliest copy
