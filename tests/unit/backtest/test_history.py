"""The history a backtest replays: read once by ingest's row rules, then returned one time range at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from pipelines.backtest.errors import BacktestError
from pipelines.backtest.history import stage_history
from pipelines.backtest.models import TrainingWindow
from pipelines.common.config import SnapshotConfig
from tests.support.data import churn_events, churn_params

PARAMS = churn_params(ingest={"min_event_time": "2024-01-01T00:00:00Z"})


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def write_csv(path, events: pd.DataFrame) -> None:
    out = events.assign(observed_at=events["observed_at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    path.write_text(out.to_csv(index=False))


@pytest.fixture
def source(tmp_path):
    events = churn_events(400)  # 2025-01-01 .. 2025-01-30
    folder = tmp_path / "events"
    folder.mkdir()
    write_csv(folder / "a.csv", events.iloc[:250])
    write_csv(folder / "b.csv", events.iloc[200:])  # 50 keys again: each is read once
    (folder / "c.csv").write_text(
        "customer_id,observed_at,tenure,plan,support_calls,churned\nx,soon,1,pro,,0\n"
    )
    (folder / "_ignored.csv").write_text("not,read\n")
    return folder, events


def test_the_history_is_read_by_the_row_rules_and_returned_by_time(source, tmp_path):
    folder, events = source

    history = stage_history(str(folder), PARAMS, timedelta(days=7), tmp_path / "scratch")

    assert history.rows == 450 and history.quarantined == 1 and len(history.files) == 3
    assert history.first_event == events["observed_at"].min()
    assert history.last_event == events["observed_at"].max()
    week = history.read(at("2025-01-08"), at("2025-01-15"))
    expected = events[
        (events["observed_at"] >= at("2025-01-08")) & (events["observed_at"] < at("2025-01-15"))
    ]
    assert week["customer_id"].tolist() == expected["customer_id"].tolist()
    assert history.read(at("2024-06-01"), at("2024-07-01")).empty
    everything = history.read(at("2024-12-01"), at("2025-03-01"))
    assert len(everything) == 400 and everything["customer_id"].is_unique


def test_a_single_file_is_a_history_too(source, tmp_path):
    folder, _ = source
    history = stage_history(str(folder / "a.csv"), PARAMS, timedelta(days=30), tmp_path / "scratch")
    assert history.rows == 250 and history.files == [str(folder / "a.csv")]


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("missing", None, "no such file or folder"),
        ("empty", {}, "holds no"),
        ("bad", {"x.csv": "customer_id,observed_at\n1,never\n"}, "none of 1 records passed"),
    ],
)
def test_an_unusable_source_is_refused_naming_it(tmp_path, name, content, fragment):
    folder = tmp_path / name
    if content is not None:
        folder.mkdir()
        for file, text in content.items():
            (folder / file).write_text(text)
    with pytest.raises(BacktestError, match=fragment) as err:
        stage_history(str(folder), PARAMS, timedelta(days=7), tmp_path / "scratch")
    assert str(folder) in str(err.value)


def test_the_training_window_keeps_only_rows_a_later_window_can_use():
    events = churn_events(400)
    window = TrainingWindow(PARAMS.schema, SnapshotConfig(window="sliding", window_days=10))
    for start in range(0, 400, 100):
        part = events.iloc[start : start + 100]
        window.add(part, part["observed_at"].max().to_pydatetime())

    rows, chosen = window.select(at("2025-01-30"))

    assert chosen.start == at("2025-01-21") and chosen.end == at("2025-01-31")
    assert window.rows["observed_at"].min() >= pd.Timestamp(chosen.start)  # older rows were dropped
    assert (
        rows["customer_id"].tolist()
        == events[events["observed_at"] >= at("2025-01-21")]["customer_id"].tolist()
    )
    assert window.first_event == events["observed_at"].min()
