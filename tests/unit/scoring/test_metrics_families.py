"""The series read from files: the champion's latest live metric, and the Kafka lag a run left."""

from __future__ import annotations

import pytest

from pipelines.scoring.serve.metrics import kafka_lag_family, last_run_age_family, live_metric_family


def samples(family) -> dict[tuple[str, ...], float]:
    return {tuple(s.labels.values()): s.value for s in family.samples}


DAY = {"model_version": "3", "metric": "pr_auc", "value": 0.6, "interval": {"low": 0.5, "high": 0.7}}


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        (
            {"days": [{**DAY, "day": "2026-01-01", "value": 0.4}, {**DAY, "day": "2026-01-02"}]},
            {("3", "pr_auc", "value"): 0.6, ("3", "pr_auc", "low"): 0.5, ("3", "pr_auc", "high"): 0.7},
        ),
        (  # the latest day has too few labels: the latest day with a value is shown
            {"days": [{**DAY, "day": "2026-01-01"}, {**DAY, "day": "2026-01-02", "value": None}]},
            {("3", "pr_auc", "value"): 0.6, ("3", "pr_auc", "low"): 0.5, ("3", "pr_auc", "high"): 0.7},
        ),
        ({"days": [{**DAY, "day": "2026-01-01", "interval": None}]}, {("3", "pr_auc", "value"): 0.6}),
        ({"days": []}, {}),
        ({}, {}),
    ],
)
def test_live_metric(report, expected):
    assert samples(live_metric_family(report)) == expected


@pytest.mark.parametrize(
    ("offsets", "expected"),
    [
        ([{"topic": "t", "partition": 0, "end_at_start": 120, "next": 100}], {("t", "0"): 20.0}),
        ([{"topic": "t", "partition": 1, "end_at_start": 100, "next": 100}], {("t", "1"): 0.0}),
        (
            [{"topic": "t", "partition": 2, "end_at_start": 90, "next": 100}],
            {("t", "2"): 0.0},
        ),  # raised bound
        ([{"topic": "t", "partition": 3, "end_at_start": None, "next": 100}], {}),
        ([], {}),
    ],
)
def test_kafka_lag(offsets, expected):
    assert samples(kafka_lag_family({"offsets": offsets})) == expected


@pytest.mark.parametrize(
    ("written", "now", "expected"),
    [
        (
            {"flywheel_training": 100.0, "flywheel_ingest": 160.0},
            200.0,
            {("flywheel_ingest",): 40.0, ("flywheel_training",): 100.0},
        ),
        ({"flywheel_drift": 250.0}, 200.0, {("flywheel_drift",): 0.0}),  # a clock ahead: never negative
        ({}, 200.0, {}),
    ],
)
def test_last_run_age(written, now, expected):
    assert samples(last_run_age_family(written, now)) == expected
