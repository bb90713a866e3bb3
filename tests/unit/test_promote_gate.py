"""The evaluation gate is a small pure function: a table of cases."""

from __future__ import annotations

import pytest

from pipelines.config import PromoteConfig
from pipelines.promote import Decision, PromoteError, Scores, decide

POLICY = PromoteConfig(metric="pr_auc", min_roc_auc=0.7, min_pr_auc=0.2, tolerance=0.01)


@pytest.mark.parametrize(
    ("candidate", "champion", "promote", "reason_fragment"),
    [
        (Scores(0.90, 0.50), None, True, "no champion yet"),
        (Scores(0.65, 0.50), None, False, "roc_auc 0.6500 is below the floor 0.7"),
        (Scores(0.90, 0.15), None, False, "pr_auc 0.1500 is below the floor 0.2"),
        (Scores(0.90, 0.55), Scores(0.90, 0.50), True, "vs champion 0.5000"),
        (Scores(0.90, 0.495), Scores(0.90, 0.50), True, "tolerance 0.01"),  # a tie within tolerance
        (Scores(0.90, 0.48), Scores(0.90, 0.50), False, "trails champion 0.5000"),
        (Scores(0.60, 0.90), Scores(0.90, 0.50), False, "below the floor"),  # floors first
    ],
)
def test_decide(candidate, champion, promote, reason_fragment):
    decision = decide(candidate, champion, POLICY)
    assert decision.promote is promote
    assert reason_fragment in decision.reason
    assert decision.forced is False


def test_forced_promotion_needs_a_reason():
    with pytest.raises(PromoteError, match="needs a non-empty reason"):
        decide(Scores(0.1, 0.1), Scores(0.9, 0.9), POLICY, force=True, force_reason="  ")
    decision = decide(Scores(0.1, 0.1), Scores(0.9, 0.9), POLICY, force=True, force_reason="hotfix for bad labels")
    assert decision == Decision(True, "forced: hotfix for bad labels", forced=True)


def test_gate_metric_is_configurable():
    roc_policy = PromoteConfig(metric="roc_auc", min_roc_auc=0.5, min_pr_auc=0.0, tolerance=0.0)
    assert decide(Scores(0.80, 0.9), Scores(0.85, 0.1), roc_policy).promote is False
    assert decide(Scores(0.86, 0.1), Scores(0.85, 0.9), roc_policy).promote is True
