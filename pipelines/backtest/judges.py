"""The verdicts a backtest asks for, from the stages that own them: the evaluation gate and the drift check.

Nothing here decides anything itself: :func:`gate` hands the candidate's and the champion's scores on
the candidate's held-out rows to the promote stage's gate (:func:`~pipelines.promote.judge`), and
:func:`drift` hands the champion's training rows and the step's labelled events to the drift stage's
calibrated check, its performance trigger and its retrain decision, exactly as the DAGs do. The one
difference: the drift check's current window is the clock's step, so ``drift.window_days`` (the
length of the reference windows its alarm is calibrated on) is the step's length here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from pipelines.backtest.models import Model
from pipelines.common.config import Params
from pipelines.drift import Evaluated, check_performance, compare, decide_retrain
from pipelines.promote import Decision, judge

ALWAYS = "the always policy promotes every retrain"


@dataclass(frozen=True)
class GateVerdict:
    """Promote or not, why, the block-bootstrap interval behind it, and the candidate's evaluated metric."""

    promote: bool
    reason: str
    interval: dict[str, Any] | None = None
    evaluated: Evaluated | None = None


@dataclass(frozen=True)
class DriftVerdict:
    """What the drift check found at the end of a step: an alarm, whether to retrain, which triggers, why."""

    alarm: bool
    retrain: bool
    triggers: tuple[str, ...]
    reasons: tuple[str, ...]


def _interval(decision: Decision) -> dict[str, Any] | None:
    """The block-bootstrap interval of candidate − champion and its blocks, as the decision records them."""
    shown: dict[str, Any] = {"blocks": decision.blocks, "block": decision.block}
    if decision.difference is not None:
        d = decision.difference
        shown |= {"mean": d.mean, "low": d.low, "high": d.high, "blocks": d.blocks, "block": d.block}
    shown = {k: v for k, v in shown.items() if v is not None}
    return shown or None


def _evaluated(decision: Decision, metric: str) -> Evaluated | None:
    """The candidate's score on its test rows with its block-bootstrap error: what the drift stage's
    performance trigger compares a labelled window with (the gate records the same on a model version)."""
    if decision.candidate is None:
        return None
    interval = decision.evaluated.get(metric)
    return Evaluated(
        decision.candidate.get(metric), interval.se if interval else None, "the gate's score on its test rows"
    )


def gate(candidate: Model, champion: Model | None, params: Params, forced: bool) -> GateVerdict:
    """The promote stage's gate on the candidate's test split; ``forced`` promotes regardless."""
    schema = params.schema
    labels = candidate.test[schema.target].to_numpy(dtype="int64")
    champion_proba = champion.predict(candidate.test) if champion is not None else None
    decision = judge(
        labels,
        candidate.test_proba,
        champion_proba,
        candidate.test[schema.event_time],
        params.promote,
        force=forced,
        force_reason=ALWAYS if forced else None,
    )
    evaluated = _evaluated(decision, params.drift.performance_metric)
    return GateVerdict(bool(decision.promote), decision.reason, _interval(decision), evaluated)


def drift(
    champion: Model,
    evaluated: Evaluated | None,
    events: pd.DataFrame,
    params: Params,
    step_days: int,
    last_retrain_at: datetime | None,
    now: datetime,
) -> DriftVerdict:
    """The drift stage's check of a step's labelled events against the champion's training rows."""
    schema, cfg = params.schema, params.drift.model_copy(update={"window_days": step_days})
    check = compare(champion.reference, events, schema, cfg, predict=champion.predict)
    performance = check_performance(
        events[schema.target],
        champion.predict(events),
        events[schema.event_time],
        evaluated,
        cfg,
        params.promote,
    )
    verdict = decide_retrain(check.result, cfg, last_retrain_at, now, performance)
    return DriftVerdict(
        bool(verdict.drift_detected), bool(verdict.retrain), tuple(verdict.triggers), tuple(verdict.reasons)
    )
