"""Retraining policies: parsed from --policies, each deciding when to retrain and whether the gate applies."""

from __future__ import annotations

import pytest

from pipelines.backtest.errors import BacktestError
from pipelines.backtest.policies import Policy, parse_policies


def test_the_default_list_parses_in_order():
    policies = parse_policies("never, every:3,drift,always")
    assert [p.name for p in policies] == ["never", "every:3", "drift", "always"]
    assert [p.gated for p in policies] == [True, True, True, False]
    assert [p.checks_drift for p in policies] == [False, False, True, False]


@pytest.mark.parametrize(
    "text",
    ["", " , ", "sometimes", "every", "every:", "every:0", "every:-1", "every:1.5", "every 3", "drift,drift"],
)
def test_bad_lists_are_refused_with_the_value(text):
    with pytest.raises(BacktestError, match="expected|more than once"):
        parse_policies(text)


# (policy, step, drift verdict, serving) -> retrain?
CASES = [
    (Policy("never"), 5, True, True, False),
    (Policy("never"), 5, None, False, False),  # never: the first model only, even when none serves
    (Policy("always"), 1, None, True, True),
    (Policy("every", 3), 3, None, True, True),
    (Policy("every", 3), 4, None, True, False),
    (Policy("every", 3), 6, False, True, True),
    (Policy("every", 1), 7, None, True, True),
    (Policy("drift"), 2, True, True, True),
    (Policy("drift"), 2, False, True, False),
    (Policy("drift"), 2, None, True, False),  # no verdict (a rejected step): no retrain
    (Policy("drift"), 2, None, False, True),  # nothing serving: retrain
    (Policy("every", 3), 4, None, False, True),
]


@pytest.mark.parametrize(("policy", "step", "verdict", "serving", "expected"), CASES)
def test_when_each_policy_retrains(policy, step, verdict, serving, expected):
    retrain, reason = policy.wants_retrain(step, verdict, serving)
    assert retrain is expected
    assert reason
