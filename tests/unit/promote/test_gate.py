"""The evaluation gate is a small pure function: a table of cases for decide and judge.

The block bootstrap behind it is tested in ``test_bootstrap.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.common.config import ParamsError, PromoteConfig, parse_params
from pipelines.promote.gate import Decision, Interval, PromoteError, Scores, decide, judge

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
    assert decision.forced is False and decision.condition


WIDE = Interval(mean=0.1, low=0.05, high=0.15, confidence=0.9, blocks=30, block="1d", rounds=500)
DECIDE_CASES = [
    # id, candidate, champion, interval, blocks, champion_note, promote?, condition, words in the reason
    ("first champion", Scores(0.9, 0.5), None, None, 3, None, True, "first_champion", ["no champion yet"]),
    (
        "too few blocks",
        Scores(0.9, 0.6),
        Scores(0.9, 0.5),
        None,
        3,
        None,
        False,
        "too_few_blocks",
        ["the test rows span 3 blocks of 1d, fewer than promote.min_blocks 8", "a shorter promote.block"],
    ),
    ("one block", Scores(0.9, 0.6), Scores(0.9, 0.5), None, 1, None, False, "too_few_blocks", ["1 block "]),
    (
        "enough blocks",
        Scores(0.9, 0.6),
        Scores(0.9, 0.5),
        WIDE,
        30,
        None,
        True,
        "clears_margin",
        ["90% CI of the difference [+0.0500, +0.1500] over 30 blocks of 1d (500 rounds)"],
    ),
    (
        "the interval's own block count",
        Scores(0.9, 0.6),
        Scores(0.9, 0.5),
        Interval(0.1, 0.05, 0.15, 0.9, blocks=5, block="1d", rounds=500),
        None,
        None,
        False,
        "too_few_blocks",
        ["5 blocks of 1d"],
    ),
    (
        "an unscorable champion",
        Scores(0.9, 0.6),
        None,
        None,
        30,
        "champion v3 could not score the test rows: unknown column 'site'",
        False,
        "champion_unscorable",
        ["champion v3 could not score the test rows: unknown column 'site'", "cannot be compared"],
    ),
    (
        "floors before an unscorable champion",
        Scores(0.5, 0.6),
        None,
        None,
        30,
        "champion v3 could not score",
        False,
        "below_floor",
        ["below the floor"],
    ),
    (
        "one class in the test rows",
        Scores(float("nan"), float("nan")),
        None,
        None,
        30,
        None,
        False,
        "one_class",
        ["roc_auc, pr_auc (they hold one class)"],
    ),
]


@pytest.mark.parametrize(
    ("case", "candidate", "champion", "interval", "blocks", "note", "promote", "condition", "words"),
    DECIDE_CASES,
    ids=[c[0] for c in DECIDE_CASES],
)
def test_decide_conditions(case, candidate, champion, interval, blocks, note, promote, condition, words):
    decision = decide(candidate, champion, POLICY, difference=interval, blocks=blocks, champion_note=note)
    assert (decision.promote, decision.condition) == (promote, condition), decision.reason
    for word in words:
        assert word in decision.reason, decision.reason


def test_an_unscorable_champion_can_be_replaced_by_force():
    decision = decide(
        Scores(0.9, 0.6), None, POLICY, force=True, force_reason="champion broken", champion_note="v3 fails"
    )
    assert decision.promote and decision.forced and decision.condition == "forced"


def _test_rows(days: int, per_day: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = days * per_day
    labels = (rng.random(n) < 0.3).astype(int)
    good = labels * 1.5 + rng.normal(0, 1, n)
    weak = labels * 0.5 + rng.normal(0, 1, n)
    better = labels * 2.0 + rng.normal(0, 1, n)  # better than ``good``
    times = pd.Timestamp("2026-03-01", tz="UTC") + pd.to_timedelta(np.sort(rng.random(n)) * days, unit="D")
    return labels, *(1 / (1 + np.exp(-score)) for score in (good, weak, better)), times


JUDGE = PromoteConfig(metric="roc_auc", min_roc_auc=0.6, min_pr_auc=0.1, bootstrap_rounds=200, min_blocks=8)
JUDGE_CASES = [
    # id, days of test rows, champion ("weak", "better", None or "broken"), promote?, condition
    ("first champion", 3, None, True, "first_champion"),
    ("better than the champion", 20, "weak", True, "clears_margin"),
    ("worse than the champion", 20, "better", False, "below_margin"),
    ("too few days to decide", 5, "weak", False, "too_few_blocks"),
    ("an unscorable champion", 20, "broken", False, "champion_unscorable"),
]


@pytest.mark.parametrize(
    ("case", "days", "champion", "promote", "condition"), JUDGE_CASES, ids=[c[0] for c in JUDGE_CASES]
)
def test_judge(case, days, champion, promote, condition):
    labels, good, weak, better, times = _test_rows(days)
    champ = {"weak": weak, "better": better, None: None, "broken": np.full(len(labels), np.nan)}[champion]
    decision = judge(labels, good, champ, times, JUDGE)
    assert (decision.promote, decision.condition) == (promote, condition), decision.reason
    assert decision.blocks == days
    assert decision.block == "1d" and decision.candidate is not None
    if condition in ("clears_margin", "below_margin"):
        assert decision.difference is not None and decision.difference.blocks == decision.blocks
        assert decision.difference.block == "1d" and decision.difference.rounds > 150
        assert set(decision.evaluated) == {"roc_auc", "pr_auc"}
    else:
        assert decision.difference is None
    if condition == "champion_unscorable":
        assert "not a finite number" in decision.reason


def test_judge_says_why_the_champion_could_not_score():
    labels, good, _, _, times = _test_rows(20)
    note = "champion v4 could not score the test rows: column 'site' is missing"
    decision = judge(labels, good, None, times, JUDGE, champion_note=note)
    assert decision.condition == "champion_unscorable" and note in decision.reason


def test_judge_is_seeded():
    labels, good, weak, _, times = _test_rows(20)
    assert judge(labels, good, weak, times, JUDGE) == judge(labels, good, weak, times, JUDGE)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("block", "1 day", "a duration such as 1d, 12h, 30min"),
        ("block", "0d", "a duration such as"),
        ("block", "3mo", "a duration such as"),
        ("min_blocks", 1, "greater than or equal to 2"),
    ],
)
def test_bad_gate_params_fail_at_load_time(demo_params, key, value, expected):
    data = demo_params.model_dump(mode="json", by_alias=True)
    data["promote"][key] = value
    with pytest.raises(ParamsError, match=f"promote.{key}") as err:
        parse_params(data)
    assert expected in str(err.value)


def test_params_without_the_new_keys_still_load(demo_params):
    data = demo_params.model_dump(mode="json", by_alias=True)
    for key in ("block", "min_blocks"):
        data["promote"].pop(key)
    assert parse_params(data).promote.block == "1d" and parse_params(data).promote.min_blocks == 8


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
    assert decision == Decision(True, "forced: hotfix for bad labels", forced=True, condition="forced")
