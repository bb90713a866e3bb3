"""The performance trigger: the champion on the labelled window against its evaluated metric."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipelines.common.config import DriftConfig, PromoteConfig
from pipelines.drift.performance import Evaluated, check_performance, evaluated_from

CFG = DriftConfig(max_performance_drop=0.03, performance_metric="roc_auc")
GATE = PromoteConfig(block="1d", min_blocks=8, bootstrap_rounds=300, confidence=0.9)
T0 = pd.Timestamp("2026-06-01", tz="UTC")


def window(days: int, per_day: int = 100, skill: float = 1.5, seed: int = 0):
    """Labelled rows over ``days`` days and a champion's probabilities of separation ``skill``."""
    rng = np.random.default_rng(seed)
    n = days * per_day
    labels = pd.Series((rng.random(n) < 0.3).astype("int64"))
    proba = 1 / (1 + np.exp(-(labels * skill + rng.normal(0, 1, n))))
    times = pd.Series(T0 + pd.to_timedelta(np.sort(rng.random(n)) * days, unit="D"))
    return labels, proba, times


# the champion's ROC-AUC at skill 1.5 is about 0.85; at 0.5 about 0.64
CASES = [
    # id, days, skill, evaluated, dropped?, words in the description
    (
        "as good as evaluated",
        20,
        1.5,
        Evaluated(0.85, 0.01),
        False,
        ["is not below -drift.max_performance_drop"],
    ),
    ("clearly worse", 20, 0.5, Evaluated(0.85, 0.01), True, ["over 20 blocks of 1d", "is below"]),
    ("worse, but an uncertain evaluation", 20, 1.2, Evaluated(0.85, 0.08), False, ["is not below"]),
    (
        "too few days",
        3,
        0.5,
        Evaluated(0.85, 0.01),
        False,
        ["not judged: the labelled rows span 3 blocks of 1d, fewer than promote.min_blocks 8"],
    ),
    (
        "no evaluated metric",
        20,
        0.5,
        None,
        False,
        ["not judged: the champion has no evaluated roc_auc recorded"],
    ),
]


@pytest.mark.parametrize(
    ("case", "days", "skill", "evaluated", "dropped", "words"), CASES, ids=[c[0] for c in CASES]
)
def test_check_performance(case, days, skill, evaluated, dropped, words):
    labels, proba, times = window(days, skill=skill)
    performance = check_performance(labels, proba, times, evaluated, CFG, GATE)
    assert performance.dropped is dropped, performance.describe()
    for word in words:
        assert word in performance.describe(), performance.describe()


def test_unlabelled_rows_are_left_out_and_one_class_is_not_judged():
    labels, proba, times = window(20)
    partly = labels.astype("Float64").mask(np.arange(len(labels)) % 2 == 0)
    performance = check_performance(partly, proba, times, Evaluated(0.85), CFG, GATE)
    assert performance.rows == len(labels) // 2 and performance.difference is not None
    zeros = pd.Series(np.zeros(len(labels), dtype="int64"))
    one_class = check_performance(zeros, proba, times, Evaluated(0.85), CFG, GATE)
    assert one_class.difference is None and "hold one class" in one_class.note


def test_the_evaluations_error_widens_the_interval():
    labels, proba, times = window(20, skill=1.2)
    exact = check_performance(labels, proba, times, Evaluated(0.85), CFG, GATE).difference
    unsure = check_performance(labels, proba, times, Evaluated(0.85, 0.05), CFG, GATE).difference
    assert unsure.low < exact.low and unsure.high > exact.high
    assert exact.blocks == unsure.blocks == 20 and exact.block == "1d"


@pytest.mark.parametrize(
    ("tags", "metrics", "expected"),
    [
        (
            {
                "flywheel.gate.candidate": json.dumps({"roc_auc": 0.91, "pr_auc": 0.4}),
                "flywheel.gate.evaluated": json.dumps({"roc_auc": {"se": 0.012}}),
            },
            {"test_roc_auc": 0.9},
            Evaluated(0.91, 0.012, "the gate's score on its test rows"),
        ),
        (
            {"flywheel.gate.candidate": json.dumps({"roc_auc": 0.91})},
            {},
            Evaluated(0.91, None, "the gate's score on its test rows"),
        ),
        ({}, {"test_roc_auc": 0.9}, Evaluated(0.9, None, "test_roc_auc of its training run")),
        (
            {"flywheel.gate.candidate": "not json"},
            {"test_roc_auc": 0.9},
            Evaluated(0.9, None, "test_roc_auc of its training run"),
        ),
        ({"flywheel.gate.candidate": json.dumps({"roc_auc": float("nan")})}, {}, None),
        ({}, {}, None),
    ],
)
def test_evaluated_from(tags, metrics, expected):
    assert evaluated_from(tags, metrics, "roc_auc") == expected
