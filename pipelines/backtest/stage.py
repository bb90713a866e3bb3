"""Backtest, the edge: stage the history, replay it on the logical clock, write the report, log one run.

:func:`run` is ``flywheel backtest`` (and ``make backtest``): it reads a labelled history in the schema of
``params.yaml`` (:mod:`.history`), sets the clock (:mod:`.clock`), replays every policy at once
(:mod:`.replay`, with the stages' own cores), and writes ``backtest.json``, ``backtest.png`` and
``backtest.html`` (:mod:`.report`) into ``out``, then logs the table and the files as one MLflow run of
the ``flywheel-backtest`` experiment. The replay's scratch files live in a temporary folder.
"""

from __future__ import annotations

import re
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from pipelines.backtest import report
from pipelines.backtest.clock import Clock, midnight, parse_step
from pipelines.backtest.errors import BacktestError
from pipelines.backtest.history import History, stage_history
from pipelines.backtest.policies import DEFAULT_POLICIES, parse_policies
from pipelines.backtest.replay import Replay, Replayer, gx_validator
from pipelines.common.config import Params
from pipelines.common.io import json_bytes
from pipelines.common.settings import Settings
from pipelines.validate import load_extra_expectations

EXPERIMENT = "flywheel-backtest"
FILES = {"json": "backtest.json", "png": "backtest.png", "html": "backtest.html"}


def default_clock(
    history: History, params: Params, step: timedelta, start: datetime | None, end: datetime | None
) -> Clock:
    """The clock from ``start`` (default: ``snapshot.window_days`` after the first event, the first model's
    history) to ``end`` (default: the end of the last event's day)."""
    first, last = history.first_event, history.last_event
    if first is None or last is None:
        raise BacktestError("the history holds no event; expected labelled events to replay")
    origin = start or midnight(first) + timedelta(days=params.snapshot.window_days)
    return Clock.between(origin, end or midnight(last) + timedelta(days=1), step)


def tabulate(replay: Replay) -> list[report.PolicySummary]:
    """One table row per policy; ``never`` (when replayed) is every other row's paired baseline."""
    records = replay.records()
    baseline = records.get("never")
    return [
        report.summarize(
            s.policy.name, records[s.policy.name], s.seconds, baseline if s.policy.name != "never" else None
        )
        for s in replay.states
    ]


def document(
    data: str,
    params: Params,
    clock: Clock,
    history: History,
    replay: Replay,
    rows: list[report.PolicySummary],
    change_step: int | None,
) -> dict[str, Any]:
    """Everything ``backtest.json`` holds: inputs, clock, table, per-step records."""
    records = replay.records()
    out: dict[str, Any] = {
        "data": {"source": data, **history.describe()},
        "clock": clock.describe(),
        "window": params.snapshot.model_dump(mode="json", exclude={"as_of"}),
        "policies": report.rows_as_dicts(rows),
        "first_model": replay.first_model,
        "warmup_steps": replay.warmup_steps,
        "candidates_trained": replay.candidates_trained,
        "rejected_steps": replay.rejected_steps,
        "seconds": replay.seconds,
        "steps": records,
    }
    if change_step is not None:
        out["change"] = {name: report.change_response(r, change_step) for name, r in records.items()}
    return out


def write_files(
    out: Path, doc: dict[str, Any], rows: list[report.PolicySummary], title: str, change_step: int | None
) -> dict[str, str]:
    """``backtest.json``, ``backtest.png`` and ``backtest.html`` in ``out``; their paths."""
    out.mkdir(parents=True, exist_ok=True)
    png = report.plot_png(doc["steps"], title, change_step)
    paths = {kind: out / name for kind, name in FILES.items()}
    paths["json"].write_bytes(json_bytes(doc))
    paths["png"].write_bytes(png)
    paths["html"].write_text(report.html_page(doc, rows, png))
    return {kind: str(path) for kind, path in paths.items()}


def _metric_key(policy: str, name: str) -> str:
    return f"{re.sub(r'[^A-Za-z0-9_.-]', '_', policy)}.{name}"


def log_run(
    settings: Settings, doc: dict[str, Any], rows: list[report.PolicySummary], files: dict[str, str]
) -> str:
    """One run in the ``flywheel-backtest`` experiment: the table as metrics, the inputs as params."""
    import mlflow

    from pipelines.common import tracking

    experiment_id = tracking.ensure_experiment(settings, EXPERIMENT)
    clock = doc["clock"]
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=f"backtest-{clock['steps']}x{clock['step_days']}d"
    ) as active:
        mlflow.set_tags({"flywheel.stage": "backtest", "flywheel.data": str(doc["data"]["source"])[:500]})
        mlflow.log_params(
            {
                "data": str(doc["data"]["source"])[:500],
                "policies": ",".join(r.policy for r in rows),
                **{f"clock.{k}": v for k, v in clock.items()},
                **{f"snapshot.{k}": v for k, v in doc["window"].items()},
            }
        )
        metrics: dict[str, float] = {}
        for row in rows:
            for name in (
                "mean_roc_auc",
                "median_roc_auc",
                "low",
                "high",
                "retrains",
                "promotions",
                "alarms",
                "bad_promotions",
                "seconds",
            ):
                value = getattr(row, name)
                if value is not None:
                    metrics[_metric_key(row.policy, name)] = float(value)
        mlflow.log_metrics(metrics)
        for path in files.values():
            mlflow.log_artifact(path, "backtest")
    run_id: str = active.info.run_id
    return run_id


def run(
    params: Params,
    settings: Settings,
    data: str,
    step: str = "30d",
    start: datetime | None = None,
    end: datetime | None = None,
    policies: str = DEFAULT_POLICIES,
    out: Path | None = None,
    change_at: datetime | None = None,
    progress: TextIO | None = None,
    track: bool = True,
) -> dict[str, Any]:
    """Replay ``data`` on a clock of ``step`` for every policy; write the report to ``out`` and MLflow.

    ``out`` defaults to ``$FLYWHEEL_HOME/backtest/<time>``; ``change_at`` (a known change in the data)
    adds each policy's response to it; ``progress`` takes a line per step (default: standard error);
    ``track`` logs the run to MLflow.

    Raises:
        BacktestError: a bad option, a missing or empty dataset, or a clock with fewer than 2 steps.
    """
    width, chosen = parse_step(step), parse_policies(policies)
    extra = load_extra_expectations(params.validation.extra_expectations, settings.params_path.parent)
    out = out or settings.home / "backtest" / datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    with tempfile.TemporaryDirectory(prefix="flywheel-backtest-") as scratch:
        history = stage_history(data, params, width, Path(scratch))
        clock = default_clock(history, params, width, start, end)
        replay = Replayer(params, history, clock, chosen, gx_validator(params, extra), progress).run()
    change_step = clock.index_of(change_at) if change_at is not None else None
    rows = tabulate(replay)
    doc = document(data, params, clock, history, replay, rows, change_step)
    title = f"{params.schema.name}: {clock.steps} steps of {width.days} days, {params.snapshot.window} window"
    files = write_files(out, doc, rows, title, change_step)
    run_id = log_run(settings, doc, rows, files) if track else None
    return {
        "out": str(out),
        "files": files,
        "clock": doc["clock"],
        "policies": doc["policies"],
        "change": doc.get("change"),
        "table": report.table_lines(rows),
        "mlflow_run_id": run_id,
    }
