"""The replay on a small history: a rejected step reaches no model, and every score is prequential."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from pipelines.backtest.clock import Clock
from pipelines.backtest.history import stage_history
from pipelines.backtest.policies import parse_policies
from pipelines.backtest.replay import Replayer
from tests.support.data import churn_events, churn_params

PARAMS = churn_params(
    ingest={"min_event_time": "2024-01-01T00:00:00Z"},
    snapshot={"window": "sliding", "window_days": 30},
    train={"epochs": 2, "patience": 1, "batch_size": 64, "hidden": [8], "device": "cpu", "cpu_threads": 1},
    promote={"min_roc_auc": 0.0, "min_pr_auc": 0.0, "min_blocks": 2},
)
ORIGIN = datetime(2025, 1, 31, tzinfo=UTC)
REJECTED_STEP = 2


@pytest.fixture
def history(tmp_path):
    """120 days of churn events, 25 a day, from 2025-01-01, staged in 10-day buckets."""
    events = churn_events(3000, seed=5)
    offsets = np.sort(np.random.default_rng(5).uniform(0, 120 * 86400, len(events)))
    events["observed_at"] = (pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(offsets, "s")).astype(
        "datetime64[us, UTC]"
    )
    path = tmp_path / "events.csv"
    events.assign(observed_at=events["observed_at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(
        path, index=False
    )
    return stage_history(str(path), PARAMS, timedelta(days=10), tmp_path / "scratch")


def replay(history, validator):
    clock = Clock.between(ORIGIN, ORIGIN + timedelta(days=60), timedelta(days=10))
    replayer = Replayer(PARAMS, history, clock, parse_policies("never,always"), validator, io.StringIO())
    return replayer, replayer.run()


def test_a_rejected_step_is_not_scored_and_never_learned_from(history):
    rejected = Clock.between(ORIGIN, ORIGIN + timedelta(days=60), timedelta(days=10)).at(REJECTED_STEP)

    def validator(events):
        first = events["observed_at"].min()
        ok = not (rejected.start <= first < rejected.end)
        return ok, [] if ok else ["expect_something(x) unexpected 100%"]

    replayer, result = replay(history, validator)

    records = result.records()
    assert [r["validated"] for r in records["always"]] == [True, False, True, True, True, True]
    assert records["always"][REJECTED_STEP - 1]["roc_auc"] is None
    assert result.rejected_steps == [
        {
            "step": REJECTED_STEP,
            "window": rejected.label(),
            "failures": ["expect_something(x) unexpected 100%"],
        }
    ]
    newest = replayer.states[1].serving  # always: trained at the end of step 5, on steps 3..5 and part of 2
    times = pd.concat([newest.reference, newest.test])["observed_at"]
    assert not ((times >= rejected.start) & (times < rejected.end)).any()


def test_every_score_comes_after_the_scored_model_s_window(history):
    _, result = replay(history, lambda events: (True, []))

    for name, records in result.records().items():
        for r in records:
            assert r["roc_auc"] is not None, (name, r)
            assert r["serving_trained_until"] <= r["start"] and r["serving_newest_event"] < r["start"]
    assert [r["serving"] for r in result.records()["never"]] == ["m0000"] * 6
    assert result.candidates_trained == 6  # the first model, then one per step but the last
