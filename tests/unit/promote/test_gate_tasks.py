"""The gate on other tasks: the metric's direction decides (lower RMSE and log-loss are better), the block
bootstrap is oriented so its lower bound must clear the margin, and the task's floor applies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.common.config import PromoteConfig
from pipelines.promote.gate import BELOW_FLOOR, BELOW_MARGIN, CLEARS_MARGIN, bootstrap_difference, judge

N = 600
TIMES = pd.Series(pd.date_range("2024-05-01", periods=N, freq="min", tz="UTC"))
RNG = np.random.default_rng(5)
Y = RNG.normal(40, 10, N)
GOOD = Y + RNG.normal(0, 2, N)
BAD = Y + RNG.normal(0, 6, N)
CLASSES = RNG.integers(0, 3, N)


def sharp(noise: float) -> np.ndarray:
    logits = np.eye(3)[CLASSES] * 3 + RNG.normal(0, noise, (N, 3))
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def policy(**kw) -> PromoteConfig:
    return PromoteConfig(block="10min", bootstrap_rounds=200, min_blocks=8, **kw)


@pytest.mark.parametrize(
    ("metric", "candidate", "champion", "condition"),
    [
        ("rmse", GOOD, BAD, CLEARS_MARGIN),
        ("rmse", BAD, GOOD, BELOW_MARGIN),
        ("mae", GOOD, BAD, CLEARS_MARGIN),
        ("r2", GOOD, BAD, CLEARS_MARGIN),
        ("r2", BAD, GOOD, BELOW_MARGIN),
    ],
)
def test_regression_gate_follows_the_metrics_direction(metric, candidate, champion, condition):
    decision = judge(Y, candidate, champion, TIMES, policy(metric=metric), task="regression")
    assert decision.condition == condition, decision.reason
    assert decision.promote is (condition == CLEARS_MARGIN)
    if metric in ("rmse", "mae"):
        assert "lower is better" in decision.reason
    assert set(decision.candidate.as_dict()) == {"rmse", "mae", "r2"}
    assert set(decision.evaluated) == {"rmse", "mae", "r2"}


def test_the_oriented_interval_of_a_lower_is_better_metric_is_positive_when_the_candidate_is_better():
    ids = np.arange(N) // 10
    interval = bootstrap_difference(Y, GOOD, BAD, "rmse", 200, 0.9, ids, seed=1)
    assert interval.low > 0 and interval.mean == pytest.approx(
        np.sqrt(np.mean((BAD - Y) ** 2)) - np.sqrt(np.mean((GOOD - Y) ** 2)), abs=0.3
    )


@pytest.mark.parametrize(
    ("metric", "better_first", "condition"),
    [("macro_f1", True, CLEARS_MARGIN), ("log_loss", True, CLEARS_MARGIN), ("log_loss", False, BELOW_MARGIN)],
)
def test_multiclass_gate_follows_the_metrics_direction(metric, better_first, condition):
    good, bad = sharp(0.5), sharp(3.0)
    candidate, champion = (good, bad) if better_first else (bad, good)
    decision = judge(CLASSES, candidate, champion, TIMES, policy(metric=metric), task="multiclass")
    assert decision.condition == condition, decision.reason


def test_the_tasks_floor_applies():
    decision = judge(Y, BAD, None, TIMES, policy(metric="rmse", min_r2=0.9), task="regression")
    assert decision.condition == BELOW_FLOOR and "r2" in decision.reason and "0.9" in decision.reason
    decision = judge(
        CLASSES, sharp(3.0), None, TIMES, policy(metric="macro_f1", min_macro_f1=0.99), task="multiclass"
    )
    assert decision.condition == BELOW_FLOOR and "macro_f1" in decision.reason
