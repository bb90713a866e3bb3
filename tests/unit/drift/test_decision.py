"""The drift gate over a table of cases: what retrains, what does not, and the reasons it gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipelines.common.config import DriftConfig, ParamsError, parse_params
from pipelines.drift.decision import TRIGGERS, ColumnDrift, DriftResult, decide_retrain
from pipelines.drift.performance import Evaluated, Performance
from pipelines.promote import Interval

NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)
POLICY = DriftConfig(
    max_drift_share=0.5, min_rows=500, min_roc_auc=0.7, cooldown_hours=24, column_threshold=0.1
)


def col(name: str, score: float, critical: bool = False) -> ColumnDrift:
    return ColumnDrift(name, "wasserstein", score, 0.1, score >= 0.1, critical)


def result(
    scores: dict[str, float], rows: int = 5000, roc_auc: float | None = 0.9, critical: tuple[str, ...] = ()
) -> DriftResult:
    return DriftResult(
        rows, 10_000, tuple(col(n, s, n in critical) for n, s in scores.items()), roc_auc=roc_auc
    )


FOUR_CALM = {"a": 0.01, "b": 0.02, "c": 0.03, "d": 0.04}
CASES = [
    # id, result, last drift-triggered retrain, retrain?, drift detected?, words in the reasons
    (
        "below threshold",
        result({"a": 0.3, "b": 0.02, "c": 0.03, "d": 0.04}),
        None,
        False,
        False,
        ["drift share 0.25 < 0.5", "drifted: a"],
    ),
    (
        "at threshold",
        result({"a": 0.3, "b": 0.2, "c": 0.03, "d": 0.04}),
        None,
        True,
        True,
        ["drift share 0.50 >= drift.max_drift_share 0.5 (2 of 4 columns drifted: a, b)"],
    ),
    (
        "a critical column",
        result({**FOUR_CALM, "a": 0.15}, critical=("a",)),
        None,
        True,
        True,
        ["critical column a (wasserstein 0.150 >= 0.1) drifted"],
    ),
    (
        "a critical column that did not drift",
        result(FOUR_CALM, critical=("a",)),
        None,
        False,
        False,
        ["no critical column drifted"],
    ),
    (
        "a small window",
        result({"a": 0.9, "b": 0.9}, rows=499),
        None,
        False,
        False,
        ["499 rows, fewer than drift.min_rows 500"],
    ),
    (
        "an empty window",
        DriftResult(0, 10_000, notes=("the current window has 0 rows",)),
        None,
        False,
        False,
        ["0 rows"],
    ),
    (
        "inside the cooldown",
        result({"a": 0.9, "b": 0.9}),
        NOW - timedelta(hours=3),
        False,
        True,
        ["drift share 1.00", "inside the cooldown", "3.0 h ago", "drift.cooldown_hours 24"],
    ),
    (
        "after the cooldown",
        result({"a": 0.9, "b": 0.9}),
        NOW - timedelta(hours=25),
        True,
        True,
        ["drift share 1.00"],
    ),
    (
        "quality drop without data drift",
        result(FOUR_CALM, roc_auc=0.62),
        None,
        True,
        True,
        ["champion ROC-AUC 0.620 on the current window is below drift.min_roc_auc 0.7"],
    ),
    (
        "quality at the floor",
        result(FOUR_CALM, roc_auc=0.7),
        None,
        False,
        False,
        ["champion ROC-AUC 0.700 >= 0.7"],
    ),
    ("no labels", result(FOUR_CALM, roc_auc=None), None, False, False, ["no labels to judge quality"]),
]


@pytest.mark.parametrize(
    ("case", "res", "last", "retrain", "detected", "words"), CASES, ids=[c[0] for c in CASES]
)
def test_decide_retrain(case, res, last, retrain, detected, words):
    verdict = decide_retrain(res, POLICY, last, NOW)
    assert verdict.retrain is retrain, verdict.reasons
    assert verdict.drift_detected is detected
    text = " | ".join(verdict.reasons)
    for word in words:
        assert word in text, text


def test_every_trigger_is_a_reason():
    verdict = decide_retrain(result({"a": 0.9, "b": 0.9}, roc_auc=0.5, critical=("a",)), POLICY, None, NOW)
    assert verdict.retrain and len(verdict.reasons) == 3


def test_skipped_columns_are_not_in_the_share():
    res = DriftResult(
        5000,
        9000,
        (
            col("a", 0.3),
            col("b", 0.01),
            ColumnDrift(
                "c", "presence", None, 0.1, False, skipped=True, note="no values in either window: not tested"
            ),
        ),
    )
    assert res.drift_share == 0.5 and res.drifted_columns == ["a"]
    assert decide_retrain(res, POLICY, None, NOW).retrain is True


def test_a_column_null_in_the_current_window_counts_as_drifted():
    res = DriftResult(
        5000,
        9000,
        (
            ColumnDrift(
                "a",
                "presence",
                None,
                0.1,
                True,
                critical=True,
                note="all values are null in the current window",
            ),
            col("b", 0.0),
        ),
    )
    verdict = decide_retrain(res, POLICY, None, NOW)
    assert (
        verdict.retrain
        and "critical column a (all values are null in the current window)" in verdict.reasons[-1]
    )


def test_nothing_tested_is_no_drift():
    verdict = decide_retrain(DriftResult(5000, 9000), POLICY, None, NOW)
    assert verdict.retrain is False and "drift share 0.00" in verdict.reasons[0]


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("max_drift_share", 0, "greater than 0"),
        ("max_drift_share", 1.5, "less than or equal to 1"),
        ("min_rows", 0, "greater than or equal to 1"),
        ("cooldown_hours", -1, "greater than or equal to 0"),
        ("num_method", "ks", "wasserstein"),
        ("sample_rows", 10, "greater than or equal to 1000"),
    ],
)
def test_bad_drift_params_fail_at_load_time(demo_params, key, value, expected):
    data = demo_params.model_dump(mode="json", by_alias=True)
    data["drift"][key] = value
    with pytest.raises(ParamsError, match=f"drift.{key}") as err:
        parse_params(data)
    assert expected in str(err.value)


def performance(dropped: bool, judged: bool = True) -> Performance:
    """A performance check whose interval of window − evaluated lies below -0.03 (dropped) or not."""
    if not judged:
        return Performance(
            "roc_auc", 800, 0.03, Evaluated(0.86), note="the labelled rows span 3 blocks of 1d"
        )
    low, high = (-0.12, -0.05) if dropped else (-0.04, 0.02)
    interval = Interval((low + high) / 2, low, high, 0.9, blocks=30, block="1d", rounds=500)
    return Performance("roc_auc", 800, 0.03, Evaluated(0.86, 0.01), 0.86 + (low + high) / 2, interval)


TRIGGER_CASES = [
    # id, result, performance, last retrain, retrain?, triggers named, words in the reasons
    ("nothing fired", result(FOUR_CALM), performance(False), None, False, [], ["is not below"]),
    (
        "data drift",
        result({"a": 0.3, "b": 0.2, "c": 0.03, "d": 0.04}),
        None,
        None,
        True,
        ["data_drift"],
        ["drift share 0.50"],
    ),
    (
        "a critical column",
        result({**FOUR_CALM, "a": 0.15}, critical=("a",)),
        None,
        None,
        True,
        ["critical_column"],
        [],
    ),
    (
        "performance alone",
        result(FOUR_CALM),
        performance(True),
        None,
        True,
        ["performance"],
        [
            "champion roc_auc 0.7750 on 800 labelled rows vs 0.8600 evaluated",
            "over 30 blocks of 1d",
            "is below",
        ],
    ),
    ("quality floor", result(FOUR_CALM, roc_auc=0.6), None, None, True, ["quality_floor"], []),
    (
        "performance not judged",
        result(FOUR_CALM),
        performance(True, judged=False),
        None,
        False,
        [],
        ["performance not judged: the labelled rows span 3 blocks of 1d"],
    ),
    (
        "all of them",
        result({"a": 0.9, "b": 0.9}, roc_auc=0.5, critical=("a",)),
        performance(True),
        None,
        True,
        ["data_drift", "critical_column", "performance", "quality_floor"],
        [],
    ),
    (
        "performance inside the cooldown",
        result(FOUR_CALM),
        performance(True),
        NOW - timedelta(hours=2),
        False,
        ["performance"],
        ["inside the cooldown"],
    ),
]


@pytest.mark.parametrize(
    ("case", "res", "perf", "last", "retrain", "triggers", "words"),
    TRIGGER_CASES,
    ids=[c[0] for c in TRIGGER_CASES],
)
def test_the_verdict_names_the_triggers(case, res, perf, last, retrain, triggers, words):
    verdict = decide_retrain(res, POLICY, last, NOW, perf)
    assert verdict.retrain is retrain, verdict.reasons
    assert verdict.triggers == triggers and set(triggers) <= set(TRIGGERS)
    assert verdict.drift_detected is bool(triggers)
    text = " | ".join(verdict.reasons)
    for word in words:
        assert word in text, text


def test_a_calibrated_column_says_where_its_threshold_came_from():
    column = ColumnDrift(
        "price",
        "wasserstein",
        0.21,
        0.083,
        True,
        calibration="the 0.99 quantile of its distances over 30 windows",
    )
    assert (
        column.describe()
        == "price (wasserstein 0.210 >= 0.083, the 0.99 quantile of its distances over 30 windows)"
    )
