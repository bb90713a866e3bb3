"""The logical clock: whole-day steps after a UTC midnight; bad steps and short clocks are refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipelines.backtest.clock import Clock, Step, midnight, parse_step
from pipelines.backtest.errors import BacktestError


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(("text", "days"), [("30d", 30), ("1d", 1), ("2w", 14), (" 90d ", 90), ("7d", 7)])
def test_steps_are_whole_days_or_weeks(text, days):
    assert parse_step(text) == timedelta(days=days)


@pytest.mark.parametrize("text", ["30", "0d", "12h", "1.5d", "d", "", "-3d", "30 days"])
def test_other_steps_are_refused_with_the_value(text):
    with pytest.raises(BacktestError, match="expected a whole number of days or weeks"):
        parse_step(text)


def test_steps_tile_the_clock_from_its_origin():
    clock = Clock.between(at("2020-01-01T15:00"), at("2020-04-10"), timedelta(days=30))

    assert clock.origin == at("2020-01-01") and len(clock) == 3  # 2020-04-10 is 100 days on: 3 whole steps
    steps = list(clock)
    assert [s.index for s in steps] == [1, 2, 3]
    assert steps[0] == Step(1, at("2020-01-01"), at("2020-01-31"))
    assert all(a.end == b.start for a, b in zip(steps, steps[1:], strict=False))
    assert clock.end == steps[-1].end == at("2020-03-31")
    assert steps[0].as_of == at("2020-01-30")  # the last whole day known when step 1 ends


@pytest.mark.parametrize(
    ("moment", "index"),
    [
        ("2020-01-01", 1),
        ("2020-01-30T23:59", 1),
        ("2020-01-31", 2),
        ("2019-12-31T23:00", 0),
        ("2019-12-01", -1),
    ],
)
def test_index_of_a_moment(moment, index):
    clock = Clock.between(at("2020-01-01"), at("2020-12-31"), timedelta(days=30))
    assert clock.index_of(at(moment)) == index
    assert clock.at(index).start <= at(moment) < clock.at(index).end


@pytest.mark.parametrize(("end", "count"), [("2020-01-31", 1), ("2020-01-01", 0), ("2019-06-01", 0)])
def test_a_clock_needs_two_steps(end, count):
    with pytest.raises(BacktestError, match=f"holds {count} whole step"):
        Clock.between(at("2020-01-01"), at(end), timedelta(days=30))


def test_midnight_takes_naive_times_as_utc():
    assert midnight(datetime(2020, 5, 1, 23, 59)) == at("2020-05-01")
    assert midnight(datetime(2020, 5, 1, 23, 0, tzinfo=UTC) + timedelta(hours=2)) == at("2020-05-02")
