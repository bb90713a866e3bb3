"""Calibrated drift alarms: windows of the reference, each column's null, and the verdicts they give.

A column whose level moves from day to day (a price, the weather) is far past a fixed distance
threshold on any new day; judged against its own day-to-day variation it is calm, and a real
shift still stands out.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from pipelines.common.config import DriftConfig, ParamsError, Schema, parse_params
from pipelines.drift.calibrate import (
    Windows,
    calibrate,
    null_distribution,
    null_pairs,
    prediction_bound,
    reference_windows,
    threshold_of,
)
from pipelines.drift.check import compare

DAY = timedelta(days=1)
T0 = pd.Timestamp("2026-01-01", tz="UTC")


def times(days: float, rows: int) -> pd.Series:
    return pd.Series(T0 + pd.to_timedelta(np.linspace(0, days, rows, endpoint=False), unit="D"))


WINDOW_CASES = [
    # id, event times, window length, draws, expected windows, disjoint, words in "how", words in the note
    ("daily windows over 20 days", times(20, 2000), DAY, 50, 50, 20, ["50 windows of 1 day"], None),
    ("weekly windows over 70 days", times(70, 7000), 7 * DAY, 30, 30, 10, ["30 windows of 7 days"], None),
    (
        "a short reference: shorter windows",
        times(3, 800),
        DAY,
        40,
        40,
        8,
        [
            "40 windows of 8.99 h of the reference (it spans 3 days",
            "fewer than drift.min_null_windows 8 windows of 1 day",
        ],
        None,
    ),
    ("no event times: runs of rows", None, DAY, 40, 40, 8, ["40 runs of 100 rows", "row order"], None),
    (
        "too small to calibrate",
        times(3, 100),
        DAY,
        40,
        0,
        0,
        [],
        ["no window of the reference holds 20 rows"],
    ),
    (
        "too few rows without times",
        None,
        DAY,
        40,
        0,
        0,
        [],
        ["the reference has 100 rows, too few for windows of at least 20 rows"],
    ),
]


@pytest.mark.parametrize(
    ("case", "event_times", "length", "draws", "count", "disjoint", "how", "note"),
    WINDOW_CASES,
    ids=[c[0] for c in WINDOW_CASES],
)
def test_reference_windows(case, event_times, length, draws, count, disjoint, how, note):
    if event_times is None:  # no usable times: as many rows as the note or the runs need
        event_times = pd.Series([None] * (100 if note else 800))
    windows = reference_windows(event_times, length, draws, 8)
    assert (len(windows.rows), windows.independent) == (count, disjoint), windows.how
    for word in how:
        assert word in windows.how, windows.how
    assert (windows.note is None) == (note is None)
    for word in note or []:
        assert word in windows.note, windows.note


def test_windows_are_stretches_of_event_time_spread_over_the_reference():
    shuffled = times(10, 1000).sample(frac=1.0, random_state=0).reset_index(drop=True)
    windows = reference_windows(shuffled, DAY, 19, 8)
    starts = [shuffled.iloc[rows].min() for rows in windows.rows]
    assert starts == sorted(starts) and starts[0] == shuffled.min()
    for rows in windows.rows:  # one day of event time each, whatever the row order
        span = shuffled.iloc[rows].max() - shuffled.iloc[rows].min()
        assert pd.Timedelta(hours=23) < span < DAY and len(rows) == 100


def mean_gap(reference: pd.Series, current: pd.Series) -> float:
    return abs(float(reference.mean() - current.mean()))


def test_the_null_matches_the_current_window_size_and_is_seeded():
    values = pd.Series(np.random.default_rng(0).normal(0, 1, 4000))
    windows = reference_windows(times(40, 4000), DAY, 40, 8)
    small = null_distribution(values, null_pairs(windows, 4000, window_rows=10, seed=1), mean_gap)
    large = null_distribution(values, null_pairs(windows, 4000, window_rows=100, seed=1), mean_gap)
    assert len(small) == len(large) == 40
    assert small.mean() > 2 * large.mean()  # fewer current rows: a noisier null, a higher threshold
    again = null_distribution(values, null_pairs(windows, 4000, window_rows=10, seed=1), mean_gap)
    assert np.array_equal(small, again)
    for rest, window in null_pairs(windows, 4000, window_rows=10, seed=1):
        assert len(window) == 10 and not set(rest) & set(window) and len(rest) == 4000 - 100


@pytest.mark.parametrize(
    ("null", "quantile", "floor", "independent", "expected"),
    [
        (np.arange(1, 101) / 100, 0.99, 0.0, 0, 0.9901),  # the empirical quantile
        (np.arange(1, 101) / 100, 0.5, 0.0, 0, 0.505),
        (np.full(10, 0.01), 0.99, 0.05, 0, 0.05),  # the floor
        (np.full(10, 0.01), 0.99, 0.0, 10, 0.01),  # no spread: the bound is the value
    ],
)
def test_threshold_of(null, quantile, floor, independent, expected):
    assert threshold_of(null, quantile, floor, independent) == pytest.approx(expected)


def test_few_disjoint_windows_raise_the_threshold_above_the_empirical_quantile():
    null = np.exp(np.random.default_rng(0).normal(np.log(0.05), 0.3, 100))
    empirical = float(np.quantile(null, 0.99))
    assert threshold_of(null, 0.99, 0.0, 5) > threshold_of(null, 0.99, 0.0, 30) > 0.9 * empirical
    assert threshold_of(null, 0.99, 0.0, 5) == pytest.approx(prediction_bound(null, 0.99, 5))


def test_a_column_without_values_in_most_windows_is_not_calibrated():
    values = pd.Series([np.nan] * 800 + list(range(200)), dtype="float64")
    windows = reference_windows(times(10, 1000), DAY, 10, 8)
    pairs = null_pairs(windows, 1000, 100)
    gap = lambda r, c: mean_gap(r.dropna(), c.dropna())  # noqa: E731
    calibration = calibrate(values, windows, pairs, gap, 0.99, 0)
    assert calibration.threshold is None and "only 2 of 10 reference windows hold values" in calibration.note
    empty = calibrate(values, Windows((), "", note="too small"), [], mean_gap, 0.99, 0)
    assert empty.threshold is None and empty.describe() == "not calibrated: too small"


# -- the verdicts, through compare() -------------------------------------------------------------

SCHEMA = Schema.model_validate(
    {
        "name": "market",
        "key": "id",
        "event_time": "at",
        "target": "up",
        "columns": [
            {"name": "price", "type": "float", "critical": True},
            {"name": "region", "type": "category", "categories": ["n", "s", "e", "w"]},
        ],
    }
)
CALIBRATED = DriftConfig(min_rows=100, sample_rows=None, window_days=1, null_windows=50)
FIXED = CALIBRATED.model_copy(update={"alarm": "fixed"})


def market(days: int, per_day: int, start_day: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """A price whose level wanders from day to day (sd 0.3 around 10, within-day sd 1), four regions."""
    rng = np.random.default_rng(seed)
    day = np.repeat(np.arange(days), per_day)
    level = 10 + rng.normal(0, 0.3, days)[day] + shift
    p = np.array([0.4, 0.3, 0.2, 0.1]) * (1 - min(shift, 1)) + np.array([0.1, 0.2, 0.3, 0.4]) * min(shift, 1)
    return pd.DataFrame(
        {
            "id": [f"{seed}-{i}" for i in range(len(day))],
            "at": T0 + pd.to_timedelta(start_day + day + rng.random(len(day)), unit="D"),
            "price": level + rng.normal(0, 1, len(day)),
            "region": rng.choice(["n", "s", "e", "w"], len(day), p=p).astype(object),
            "up": rng.integers(0, 2, len(day)),
        }
    )


VERDICT_CASES = [
    # id, reference, current, config, drifted columns, words in the price column's description/note
    (
        "a new ordinary day, fixed threshold: false alarm",
        market(30, 200, 0, 1),
        market(1, 2000, 31, 2),
        FIXED,
        {"price"},
        ["wasserstein", ">= 0.1"],
    ),
    (
        "a new ordinary day, calibrated: calm",
        market(30, 200, 0, 1),
        market(1, 2000, 31, 2),
        CALIBRATED,
        set(),
        ["the 0.99 quantile of its distances over 50 windows of 1 day of the reference (30 disjoint)"],
    ),
    (
        "a shifted day, calibrated: drift",
        market(30, 200, 0, 1),
        market(1, 2000, 31, 3, shift=1.5),
        CALIBRATED,
        {"price", "region"},
        [">="],
    ),
    (
        "a small reference: the fixed threshold, with a note",
        market(2, 50, 0, 1),
        market(1, 2000, 31, 2, shift=1.5),
        CALIBRATED,
        {"price", "region"},
        ["not calibrated: no window of the reference holds 20 rows (100 rows in all)"],
    ),
]


@pytest.mark.parametrize(
    ("case", "reference", "current", "cfg", "drifted", "words"),
    VERDICT_CASES,
    ids=[c[0] for c in VERDICT_CASES],
)
def test_calibrated_verdicts(case, reference, current, cfg, drifted, words):
    result = compare(reference, current, SCHEMA, cfg).result
    assert set(result.drifted_columns) == drifted, [c.describe() for c in result.columns]
    price = next(c for c in result.columns if c.name == "price")
    text = f"{price.describe()} {price.note or ''}"
    for word in words:
        assert word in text, text


def test_the_evidently_report_shows_the_calibrated_thresholds():
    check = compare(market(30, 200, 0, 1), market(1, 2000, 31, 2), SCHEMA, CALIBRATED)
    price = next(c for c in check.result.columns if c.name == "price")
    assert price.threshold > 0.1 and not price.drifted
    tests = [m for m in check.snapshot.dict()["metrics"] if m["config"].get("column") == "price"]
    assert tests and tests[0]["config"]["threshold"] == pytest.approx(price.threshold)


def test_the_stationary_false_alarm_rate_is_low():
    """Ten ordinary days after a 30-day reference: the calibrated alarm stays calm on (nearly) all."""
    reference = market(30, 200, 0, 1)
    fired = [
        bool(compare(reference, market(1, 500, 31 + k, 100 + k), SCHEMA, CALIBRATED).result.drifted_columns)
        for k in range(10)
    ]
    assert sum(fired) <= 1, fired


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("alarm", "adaptive", "'calibrated' or 'fixed'"),
        ("null_quantile", 0.4, "greater than 0.5"),
        ("null_quantile", 1, "less than 1"),
        ("min_null_windows", 1, "greater than or equal to 2"),
        ("null_windows", 5, "greater than or equal to 10"),
        ("min_distance", -0.1, "greater than or equal to 0"),
        ("max_performance_drop", -0.01, "greater than or equal to 0"),
        ("performance_metric", "f1", "'roc_auc', 'pr_auc', 'macro_f1'"),
        ("performance_metric", "rmse", "a metric of task binary, one of ['roc_auc', 'pr_auc']"),
    ],
)
def test_bad_alarm_params_fail_at_load_time(demo_params, key, value, expected):
    data = demo_params.model_dump(mode="json", by_alias=True)
    data["drift"][key] = value
    with pytest.raises(ParamsError, match=f"drift.{key}") as err:
        parse_params(data)
    assert expected in str(err.value)


def test_params_without_the_alarm_keys_still_load(demo_params):
    data = demo_params.model_dump(mode="json", by_alias=True)
    for key in ("alarm", "null_quantile", "min_null_windows", "min_distance", "max_performance_drop"):
        data["drift"].pop(key)
    drift = parse_params(data).drift
    assert (drift.alarm, drift.null_quantile, drift.max_performance_drop) == ("calibrated", 0.99, 0.03)
