"""The evaluation gate is a small pure function: a table of cases, and the bootstrap behind it."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.common.config import PromoteConfig
from pipelines.promote.gate import Decision, Interval, PromoteError, Scores, bootstrap_difference, decide

POLICY = PromoteConfig(metric="pr_auc", min_roc_auc=0.7, min_pr_auc=0.2, min_improvement=0.0)


def ci(low: float, high: float) -> Interval:
    return Interval(mean=(low + high) / 2, low=low, high=high, confidence=0.9)


@pytest.mark.parametrize(
    ("candidate", "champion", "interval", "promote", "reason_fragment"),
    [
        (Scores(0.90, 0.50), None, None, True, "no champion yet"),
        (Scores(0.65, 0.50), None, None, False, "roc_auc 0.6500 is below the floor 0.7"),
        (Scores(0.90, 0.15), None, None, False, "pr_auc 0.1500 is below the floor 0.2"),
        (Scores(0.90, 0.60), Scores(0.90, 0.50), ci(0.04, 0.16), True, "clears the margin +0.0000"),
        (Scores(0.90, 0.52), Scores(0.90, 0.50), ci(-0.03, 0.07), False, "does not clear the margin"),
        (Scores(0.90, 0.40), Scores(0.90, 0.50), ci(-0.15, -0.05), False, "[-0.1500, -0.0500]"),
        (Scores(0.60, 0.90), Scores(0.90, 0.50), ci(0.3, 0.5), False, "below the floor"),  # floors first
        (Scores(0.90, 0.55), Scores(0.90, 0.50), None, True, "difference +0.0500"),  # point estimate
    ],
)
def test_decide(candidate, champion, interval, promote, reason_fragment):
    decision = decide(candidate, champion, POLICY, difference=interval)
    assert decision.promote is promote
    assert reason_fragment in decision.reason
    assert decision.forced is False


def test_negative_margin_tolerates_a_small_loss():
    tolerant = PromoteConfig(metric="pr_auc", min_roc_auc=0.5, min_pr_auc=0.0, min_improvement=-0.05)
    assert decide(Scores(0.9, 0.49), Scores(0.9, 0.5), tolerant, difference=ci(-0.04, 0.02)).promote
    assert not decide(Scores(0.9, 0.45), Scores(0.9, 0.5), tolerant, difference=ci(-0.09, -0.01)).promote


def test_forced_promotion_needs_a_reason():
    with pytest.raises(PromoteError, match="needs a non-empty reason"):
        decide(Scores(0.1, 0.1), Scores(0.9, 0.9), POLICY, force=True, force_reason="  ")
    decision = decide(
        Scores(0.1, 0.1), Scores(0.9, 0.9), POLICY, force=True, force_reason="hotfix for bad labels"
    )
    assert decision == Decision(True, "forced: hotfix for bad labels", forced=True)


def _data(n: int = 2000, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.1).astype(int)
    good = np.clip(labels * 0.6 + rng.normal(0.2, 0.2, n), 0, 1)
    weak = np.clip(labels * 0.15 + rng.normal(0.2, 0.2, n), 0, 1)
    return labels, good, weak


@pytest.mark.parametrize("metric", ["roc_auc", "pr_auc"])
def test_bootstrap_separates_a_better_model_and_ties_identical_ones(metric):
    labels, good, weak = _data()
    better = bootstrap_difference(labels, good, weak, metric, rounds=80, confidence=0.9)
    assert better.low > 0 and better.low <= better.mean <= better.high
    worse = bootstrap_difference(labels, weak, good, metric, rounds=80, confidence=0.9)
    assert worse.high < 0
    same = bootstrap_difference(labels, good, good, metric, rounds=80, confidence=0.9)
    assert same.low == same.high == 0.0


def test_bootstrap_is_seeded_and_thins_large_sets():
    labels, good, weak = _data(n=50_000, seed=1)
    first = bootstrap_difference(labels, good, weak, "pr_auc", rounds=100, confidence=0.9, max_rows=5000)
    again = bootstrap_difference(labels, good, weak, "pr_auc", rounds=100, confidence=0.9, max_rows=5000)
    assert first == again


def test_bootstrap_needs_both_classes():
    with pytest.raises(PromoteError, match="both classes"):
        bootstrap_difference(np.zeros(50, dtype=int), np.zeros(50), np.zeros(50), "roc_auc", 60, 0.9)
