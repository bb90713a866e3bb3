"""The performance trigger per task: a regression champion whose RMSE grew, or a multiclass one whose
log-loss grew or macro-F1 fell, has dropped; the difference is oriented so "below -max_drop" means worse."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.common.config import DriftConfig, PromoteConfig
from pipelines.drift.performance import Evaluated, check_performance

GATE = PromoteConfig(block="1d", min_blocks=8, bootstrap_rounds=300, confidence=0.9)
T0 = pd.Timestamp("2026-06-01", tz="UTC")
N, DAYS = 2000, 20
RNG = np.random.default_rng(4)
TIMES = pd.Series(T0 + pd.to_timedelta(np.sort(RNG.random(N)) * DAYS, unit="D"))
Y = RNG.normal(30, 8, N)
CLASSES = ("a", "b", "c")
CODES = RNG.integers(0, 3, N)


def predictions(noise: float) -> np.ndarray:
    return Y + np.random.default_rng(1).normal(0, noise, N)


def probabilities(noise: float) -> np.ndarray:
    logits = np.eye(3)[CODES] * 2 + np.random.default_rng(2).normal(0, noise, (N, 3))
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize(
    ("metric", "noise", "evaluated", "dropped"),
    [
        ("rmse", 2.0, 2.0, False),  # as evaluated
        ("rmse", 5.0, 2.0, True),  # RMSE grew from 2 to 5 minutes
        ("rmse", 1.0, 2.0, False),  # better than evaluated: never a drop
        ("r2", 5.0, 0.94, True),
    ],
)
def test_a_regression_champion_that_got_worse_has_dropped(metric, noise, evaluated, dropped):
    cfg = DriftConfig(performance_metric=metric, max_performance_drop=0.1)
    result = check_performance(pd.Series(Y), predictions(noise), TIMES, Evaluated(evaluated, 0.05), cfg, GATE)
    assert result.dropped is dropped, result.describe()
    if metric == "rmse":
        assert "lower is better" in result.describe()


@pytest.mark.parametrize(
    ("metric", "noise", "dropped"),
    [("log_loss", 4.0, True), ("macro_f1", 4.0, True), ("macro_f1", 0.5, False)],
)
def test_a_multiclass_champion_that_got_worse_has_dropped(metric, noise, dropped):
    good = check_performance(
        pd.Series(np.array(CLASSES)[CODES]),
        probabilities(0.5),
        TIMES,
        Evaluated(0.0, 0.0),
        DriftConfig(performance_metric=metric),
        GATE,
        classes=CLASSES,
    )
    evaluated = Evaluated(good.window, 0.01)
    labels = pd.Series(np.array(CLASSES, dtype=object)[CODES])
    cfg = DriftConfig(performance_metric=metric, max_performance_drop=0.02)
    result = check_performance(labels, probabilities(noise), TIMES, evaluated, cfg, GATE, classes=CLASSES)
    assert result.dropped is dropped, result.describe()
