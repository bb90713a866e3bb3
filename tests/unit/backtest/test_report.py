"""The report's maths: intervals over blocks of steps, bad promotions, the table, the response to a change."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.backtest import report


def record(step: int, roc_auc: float | None, **fields) -> dict:
    base = {
        "step": step,
        "roc_auc": roc_auc,
        "previous": None,
        "previous_roc_auc": None,
        "alarm": None,
        "retrained": False,
        "promoted": False,
    }
    return {**base, **fields}


@pytest.mark.parametrize(("n", "block"), [(1, 1), (8, 2), (27, 3), (568, 8), (1000, 10)])
def test_block_length_grows_as_the_cube_root(n, block):
    assert report.block_length(n) == block


def test_a_constant_series_has_a_point_interval():
    assert report.block_bootstrap_mean(np.full(30, 0.8)) == pytest.approx((0.8, 0.8))


@pytest.mark.parametrize("values", [[], [0.7]])
def test_fewer_than_two_steps_have_no_interval(values):
    assert report.block_bootstrap_mean(np.array(values)) is None


def test_the_interval_holds_the_mean_and_is_seeded():
    values = np.random.default_rng(3).normal(0.8, 0.05, 100)
    low, high = report.block_bootstrap_mean(values)
    assert low < values.mean() < high
    assert report.block_bootstrap_mean(values) == (low, high)


def test_autocorrelated_steps_get_a_wider_interval_than_independent_ones():
    """Regimes of 10 steps make neighbours alike: resampling blocks keeps that, resampling steps hides it."""
    slow = 0.8 + np.repeat(np.random.default_rng(1).normal(0, 0.04, 24), 10)
    low_b, high_b = report.block_bootstrap_mean(slow, block=12)
    low_r, high_r = report.block_bootstrap_mean(slow, block=1)
    assert high_b - low_b > 1.5 * (high_r - low_r)


BAD = [
    # a promotion at step 2; on step 3 the replaced model scores 0.85 and the new one ...
    pytest.param(0.80, [2], id="lost-by-0.05"),
    pytest.param(0.84, [], id="lost-by-0.01"),
    pytest.param(0.90, [], id="won"),
    pytest.param(None, [], id="step-3-unscored"),
]


@pytest.mark.parametrize(("after", "bad"), BAD)
def test_a_bad_promotion_loses_to_the_model_it_replaced_on_the_next_step(after, bad):
    records = [
        record(1, 0.8),
        record(2, 0.8, retrained=True, promoted=True),
        record(3, after, previous="m0000", previous_roc_auc=0.85),
    ]
    assert report.bad_promotions(records) == bad


def test_a_promotion_at_the_last_step_is_not_judged():
    assert report.bad_promotions([record(1, 0.8, promoted=True)]) == []


def test_the_paired_difference_uses_the_steps_both_scored():
    baseline = [record(1, 0.70), record(2, 0.80), record(3, None), record(4, 0.70)]
    records = [record(1, 0.75), record(2, 0.85), record(3, 0.90), record(4, 0.75)]
    diff = report.paired_difference(records, baseline)
    assert diff["mean"] == pytest.approx(0.05) and diff["steps"] == 3
    assert diff["low"] == pytest.approx(0.05) and diff["high"] == pytest.approx(0.05)
    assert report.paired_difference(records, [record(1, None)]) is None


def test_a_row_of_the_table():
    records = [
        record(1, 0.80, alarm=False),
        record(2, 0.60, alarm=True, retrained=True, promoted=True),
        record(3, 0.70, alarm=True, retrained=True, previous="m0000", previous_roc_auc=0.75),
        record(4, float("nan"), alarm=None),
    ]
    row = report.summarize("drift", records, seconds=1.23456)
    assert row.steps_scored == 3
    assert row.mean_roc_auc == pytest.approx(0.7) and row.median_roc_auc == pytest.approx(0.7)
    assert row.low <= row.mean_roc_auc <= row.high
    assert (row.retrains, row.promotions, row.promotion_rate) == (2, 1, 0.5)
    assert (row.drift_checks, row.alarms, row.alarm_rate) == (3, 2, pytest.approx(2 / 3))
    assert (row.bad_promotions, row.bad_promotion_steps) == (1, [2])
    assert row.seconds == 1.235 and row.vs_baseline is None


def test_a_policy_without_drift_checks_shows_no_alarms():
    row = report.summarize("never", [record(1, 0.8), record(2, 0.7)], 0.0)
    assert row.alarms is None and row.alarm_rate is None and row.promotion_rate is None


RESPONSE = [
    # scores of steps 1..8; the change starts with step 5; alarms at the end of these steps
    pytest.param([0.9] * 4 + [0.6, 0.7, 0.88, 0.9], {5, 6}, 1, 2, id="alarm-at-once-recovered-in-2"),
    pytest.param([0.9] * 4 + [0.6, 0.88, 0.9, 0.9], {6}, 2, 1, id="late-alarm-quick-recovery"),
    pytest.param([0.9] * 4 + [0.6, 0.6, 0.6, 0.6], set(), None, None, id="never"),
]


@pytest.mark.parametrize(("scores", "alarms", "to_alarm", "to_recover"), RESPONSE)
def test_the_response_to_a_change(scores, alarms, to_alarm, to_recover):
    records = [record(i, s, alarm=i in alarms) for i, s in enumerate(scores, start=1)]
    response = report.change_response(records, change_step=5)
    assert response["pre_change_roc_auc"] == pytest.approx(0.9)
    assert response["steps_to_alarm"] == to_alarm and response["steps_to_recover"] == to_recover


def test_the_markdown_table_has_a_row_per_policy():
    rows = [report.summarize(name, [record(1, 0.8), record(2, 0.9)], 0.5) for name in ("never", "always")]
    lines = report.table_lines(rows)
    assert len(lines) == 4 and lines[2].startswith("| never | 0.850") and lines[3].startswith("| always |")


def test_the_rolling_mean_skips_unscored_steps():
    values = np.array([np.nan, 0.8, 0.6, np.nan, 1.0])
    assert report.rolling_mean(values, 2) == pytest.approx([np.nan, 0.8, 0.7, 0.6, 1.0], nan_ok=True)
    assert report.rolling_mean(values, 1) == pytest.approx(values, nan_ok=True)


def test_the_plot_is_a_png():
    records = {
        name: [record(i, 0.8, alarm=i == 2, retrained=i == 2) for i in range(1, 5)]
        for name in ("never", "drift")
    }
    png = report.plot_png(records, "title", change_step=3)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
