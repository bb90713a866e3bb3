"""The prequential replay: the clock advances, every policy decides, the serving model meets the next step.

For every step ``k`` of the clock, in order:

1. read the step's events and run the validation gate on them (a rejected step reaches no model);
2. score, for every policy, the model serving during the step (chosen at the end of step ``k - 1``,
   trained on events before the step began) on the step's labelled events: the prequential score;
3. add the validated events to the training window;
4. at the end of the step (not after the last one): the drift check for the policies that read it,
   each policy's retrain decision, one candidate trained on the window for everyone who retrains
   (the window depends on the clock, not on the policy), and the evaluation gate per policy.

The first model is trained at the clock's origin on the history before it and passes the gate's floors
like any other. Memory holds the training window, one step and the models serving.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, TextIO

import pandas as pd

from pipelines.backtest import judges
from pipelines.backtest.clock import Clock, Step, midnight
from pipelines.backtest.history import History
from pipelines.backtest.models import Model, TrainingWindow, score, train_candidate
from pipelines.backtest.policies import Policy
from pipelines.common.config import Params
from pipelines.common.errors import FlywheelError
from pipelines.common.progress import progress
from pipelines.drift import Evaluated
from pipelines.featurize import training_window
from pipelines.validate import describe_failure, validate_frame

Validator = Callable[[pd.DataFrame], tuple[bool, list[str]]]


@dataclass
class Record:
    """One policy at one step: the serving model's score on the step, then the decisions at its end."""

    step: int
    start: str
    end: str
    rows: int
    validated: bool
    serving: str | None = None
    serving_trained_until: str | None = None  # the end of its training window: never after ``start``
    serving_newest_event: str | None = None
    roc_auc: float | None = None
    pr_auc: float | None = None
    previous: str | None = None  # the model it replaced, when it was promoted at the end of the last step
    previous_roc_auc: float | None = None
    alarm: bool | None = None  # None: this policy does not run the drift check (or could not)
    triggers: list[str] = field(default_factory=list)  # the drift triggers that fired
    drift_reasons: list[str] = field(default_factory=list)
    retrained: bool = False
    retrain_reason: str = ""
    candidate: str | None = None
    promoted: bool = False
    gate_reason: str | None = None
    interval: dict[str, Any] | None = None
    seconds: float = 0.0


@dataclass
class PolicyState:
    """Where one policy stands: what serves, what served before, and its records."""

    policy: Policy
    serving: Model | None = None
    previous: Model | None = None
    promoted_at: int | None = None
    last_retrain_at: datetime | None = None
    records: list[Record] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class Replay:
    """What a replay produced: the records per policy, the first model and the shared costs."""

    states: list[PolicyState]
    first_model: dict[str, Any] | None
    rejected_steps: list[dict[str, Any]]
    warmup_steps: int
    candidates_trained: int
    seconds: dict[str, float]

    def records(self) -> dict[str, list[dict[str, Any]]]:
        """Every policy's records as JSON-able dicts."""
        return {s.policy.name: [asdict(r) for r in s.records] for s in self.states}


def gx_validator(params: Params, extra: list[dict[str, Any]] | None) -> Validator:
    """The validation gate on one frame: ``(passed, the failed expectations in words)``."""

    def validate(events: pd.DataFrame) -> tuple[bool, list[str]]:
        outcome = validate_frame(events, params.schema, params.validation, extra)
        return outcome.success, [describe_failure(f) for f in outcome.failures]

    return validate


class Replayer:
    """Runs the clock over the history for every policy at once."""

    def __init__(
        self,
        params: Params,
        history: History,
        clock: Clock,
        policies: tuple[Policy, ...],
        validator: Validator,
        progress: TextIO | None = None,
    ) -> None:
        self.params, self.history, self.clock = params, history, clock
        self.validator, self.progress = validator, progress
        self.states = [PolicyState(p) for p in policies]
        self.window = TrainingWindow(params.schema, params.snapshot)
        self.rejected: list[dict[str, Any]] = []
        # per model: its score on its test rows as the gate measured it, for the performance trigger
        self.evaluated: dict[str, Evaluated | None] = {}
        self.shared = {"read": 0.0, "validate": 0.0, "train": 0.0}
        self.trained = 0

    # -- the loop ------------------------------------------------------------------------------

    def run(self) -> Replay:
        """Warm up, train the first model, then every step; the records per policy."""
        started = time.perf_counter()
        warmup = self.warm_up()
        first = self.first_model()
        for step in progress(self.clock, "backtest steps", unit="step"):
            self.advance(step)
        self.shared["total"] = time.perf_counter() - started
        return Replay(
            self.states,
            first,
            self.rejected,
            warmup,
            self.trained,
            {k: round(v, 3) for k, v in self.shared.items()},
        )

    def warm_up(self) -> int:
        """Validate and add the steps before the origin that the first training window reaches."""
        as_of, first = self.clock.at(0).as_of, self.history.first_event or self.clock.origin
        start = max(training_window(as_of, self.params.snapshot, first).start, midnight(first))
        steps = range(self.clock.index_of(start), 1)
        for index in steps:
            events, ok = self.read(self.clock.at(index))
            if ok:
                self.window.add(events, as_of)
        rejected = sum(r["step"] <= 0 for r in self.rejected)
        origin = self.clock.origin.date()
        self.say(f"backtest warm-up: {len(steps)} steps before {origin}, {rejected} rejected")
        return len(steps)

    def first_model(self) -> dict[str, Any] | None:
        """Train the first model at the origin; the gate judges it against nothing (its floors) for all."""
        step0 = self.clock.at(0)
        candidate, why = self.candidate(step0)
        if candidate is None:
            self.say(f"backtest: the first model could not be trained at {step0.end.date()}: {why}")
            return {"name": None, "promoted": False, "reason": why}
        verdict = self.gate(candidate, None, forced=False)
        for state in self.states:
            if verdict.promote:
                state.serving, state.promoted_at = candidate, 0
        self.say(
            f"backtest: first model {candidate.name}, {candidate.rows} rows up to {step0.end.date()} "
            f"({candidate.seconds:.1f}s): {verdict.reason}"
        )
        return {**candidate.describe(), "promoted": verdict.promote, "reason": verdict.reason}

    def advance(self, step: Step) -> None:
        """One step: read and validate, score what serves, learn from the step, decide at its end."""
        started = time.perf_counter()
        events, ok = self.read(step)
        records = {s.policy.name: self.scored(s, step, events, ok) for s in self.states}
        if ok:
            self.window.add(events, step.as_of)
        if step.index < self.clock.steps:
            self.decide(step, events, ok, records)
        for state in self.states:
            state.records.append(records[state.policy.name])
        self.report(step, len(events), records, time.perf_counter() - started)

    def decide(self, step: Step, events: pd.DataFrame, ok: bool, records: dict[str, Record]) -> None:
        """The end of ``step``: drift checks, retrain decisions, one shared candidate, the gates."""
        candidate: Model | None = None
        failure: str | None = None
        for state in self.states:
            record, clock = records[state.policy.name], time.perf_counter()
            verdict = self.drift(state, step, events) if ok else None
            if verdict is not None:
                record.alarm, record.triggers = verdict.alarm, list(verdict.triggers)
                record.drift_reasons = list(verdict.reasons)
            wants, record.retrain_reason = state.policy.wants_retrain(
                step.index, verdict.retrain if verdict else None, state.serving is not None
            )
            spent = time.perf_counter() - clock
            if wants:
                if candidate is None and failure is None:  # trained once; each policy is charged its time
                    candidate, failure = self.candidate(step)
                clock = time.perf_counter()
                self.retrain(state, record, step, candidate, failure)
                spent += time.perf_counter() - clock + (candidate.seconds if candidate else 0.0)
            record.seconds += spent
            state.seconds += spent

    # -- the parts ------------------------------------------------------------------------------

    def read(self, step: Step) -> tuple[pd.DataFrame, bool]:
        """The step's events and whether the validation gate passed them."""
        clock = time.perf_counter()
        events = self.history.read(step.start, step.end)
        self.shared["read"] += time.perf_counter() - clock
        clock = time.perf_counter()
        ok, failures = self.validator(events)
        self.shared["validate"] += time.perf_counter() - clock
        if not ok:
            self.rejected.append({"step": step.index, "window": step.label(), "failures": failures[:5]})
        return events, ok

    def scored(self, state: PolicyState, step: Step, events: pd.DataFrame, ok: bool) -> Record:
        """The record of ``step`` with the serving model's score on its events (validated ones only)."""
        record = Record(step.index, step.start.isoformat(), step.end.isoformat(), len(events), ok)
        model = state.serving
        if model is None:
            return record
        record.serving = model.name
        record.serving_trained_until = model.window.end.isoformat()
        record.serving_newest_event = model.newest_event.isoformat()
        if not ok or events.empty:
            return record
        clock = time.perf_counter()
        target = self.params.schema.target
        record.roc_auc, record.pr_auc = score(model, events, target)
        if state.promoted_at == step.index - 1 and state.previous is not None:
            record.previous = state.previous.name
            record.previous_roc_auc = score(state.previous, events, target)[0]
        record.seconds = time.perf_counter() - clock
        state.seconds += record.seconds
        return record

    def drift(self, state: PolicyState, step: Step, events: pd.DataFrame) -> judges.DriftVerdict | None:
        """The drift check at the end of ``step``, for a policy that reads it and has a model serving."""
        model = state.serving
        if not state.policy.checks_drift or model is None:
            return None
        evaluated, days = self.evaluated.get(model.name), self.clock.step.days
        return judges.drift(model, evaluated, events, self.params, days, state.last_retrain_at, step.end)

    def gate(self, candidate: Model, champion: Model | None, forced: bool) -> judges.GateVerdict:
        """The gate's verdict on ``candidate``; its evaluated score is kept for the performance trigger."""
        verdict = judges.gate(candidate, champion, self.params, forced)
        self.evaluated.setdefault(candidate.name, verdict.evaluated)
        return verdict

    def candidate(self, step: Step) -> tuple[Model | None, str | None]:
        """The one candidate of ``step``'s end, trained on the window; or why there is none."""
        rows, window = self.window.select(step.as_of)
        try:
            model = train_candidate(rows, window, self.params, step.index)
        except FlywheelError as exc:
            return None, f"training failed on {len(rows)} rows of {step.label()}'s window: {exc}"
        self.trained += 1
        self.shared["train"] += model.seconds
        return model, None

    def retrain(
        self, state: PolicyState, record: Record, step: Step, candidate: Model | None, failure: str | None
    ) -> None:
        """One policy's retrain: the gate on the shared candidate, then the aliases move or not."""
        record.retrained = True
        if state.policy.checks_drift:
            state.last_retrain_at = step.end
        if candidate is None:
            record.gate_reason = failure
            return
        record.candidate = candidate.name
        verdict = self.gate(candidate, state.serving, forced=not state.policy.gated)
        record.promoted, record.gate_reason = verdict.promote, verdict.reason
        record.interval = verdict.interval
        if verdict.promote:
            state.previous, state.serving, state.promoted_at = state.serving, candidate, step.index

    # -- progress -------------------------------------------------------------------------------

    def say(self, line: str) -> None:
        """One progress line, on ``progress`` (default: the standard error of the moment)."""
        print(line, file=self.progress or sys.stderr, flush=True)

    def report(self, step: Step, rows: int, records: dict[str, Record], seconds: float) -> None:
        """One progress line per step on stderr: the scores and what each policy did."""
        parts = []
        for name, r in records.items():
            marks = "".join(m for m, on in (("A", r.alarm), ("R", r.retrained), ("P", r.promoted)) if on)
            shown = f"{r.roc_auc:.3f}" if r.roc_auc is not None and r.roc_auc == r.roc_auc else "-"
            parts.append(f"{name} {shown}{' ' + marks if marks else ''}")
        status = "" if records and next(iter(records.values())).validated else " REJECTED"
        self.say(
            f"backtest step {step.index}/{self.clock.steps} {step.label()} {rows} rows{status} | "
            + " | ".join(parts)
            + f" | {seconds:.1f}s"
        )
