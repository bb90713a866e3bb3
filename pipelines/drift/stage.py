"""Drift: the current window of validated events against the champion's training data.

:func:`run` is the stage (``flywheel drift``, the ``flywheel_drift`` DAG): it finds
the champion's reference rows through their lineage (:mod:`pipelines.drift.reference`),
reads the current window from the validated tier, lets Evidently compare them
(:mod:`pipelines.drift.check`: data drift per column against each column's calibrated
threshold, prediction drift of the champion, its ROC-AUC/PR-AUC when the window is
labelled), checks the champion's performance on the labelled rows against its evaluated
metric (:mod:`pipelines.drift.performance`), decides with
:func:`~pipelines.drift.decision.decide_retrain` (which names the triggers that fired),
and keeps the report as HTML and
JSON under ``reports/drift/run=<run>/`` of the lake and in an MLflow run of the
monitoring experiment (``drift.experiment``).

The cooldown's memory is ``state/drift/last_retrain.json`` in the lake, written by
:func:`record_retrain` only when a retrain is actually requested (the DAG emits
``drift_detected``); a report alone never starts the cooldown.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from pipelines.common.config import Params, Schema
from pipelines.common.lake import Lake, safe_run_id
from pipelines.common.settings import Settings
from pipelines.common.tracking import MAX_TAG, ensure_experiment
from pipelines.drift import check as drift_check
from pipelines.drift import reference
from pipelines.drift.check import DriftCheck, DriftInputError
from pipelines.drift.decision import DriftResult, Verdict, decide_retrain
from pipelines.drift.performance import Performance, check_performance, evaluated_from
from pipelines.drift.reference import NoChampion, ReferenceNotFound
from pipelines.featurize import Window, read_validated, select_window
from pipelines.scoring import SCORE, live_scores

log = logging.getLogger(__name__)

STATE = ("state", "drift", "last_retrain.json")
REPORT_HTML, REPORT_JSON, SUMMARY_JSON = "report.html", "evidently.json", "summary.json"

__all__ = ["DriftInputError", "NoChampion", "ReferenceNotFound", "describe", "record_retrain", "run"]


# -- inputs ------------------------------------------------------------------------------------


def current_window(lake: Lake, schema: Schema, window: Window) -> tuple[pd.DataFrame, int]:
    """Validated events inside ``window`` (each key once) and the number of partitions read."""
    frames, partitions = read_validated(lake)
    needed = [schema.key, schema.event_time, *schema.feature_names, schema.target]
    for frame, partition in zip(frames, partitions, strict=True):
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise DriftInputError(
                f"validated partition {partition} lacks column(s) {missing}; expected the "
                f"schema's columns {needed}"
            )
    return select_window(frames, schema, window), len(partitions)


def champion_predictor(model_uri: str, classes: tuple[str, ...] | None = None) -> drift_check.Predict:
    """The champion's pyfunc as ``raw rows -> probability`` (a regression model's prediction; a
    multiclass model's ``[n, k]`` class probabilities, ``classes`` given)."""
    import mlflow

    from pipelines.train import prediction_scores

    model = mlflow.pyfunc.load_model(model_uri)
    return lambda rows: prediction_scores(model.predict(rows), classes)


# -- the cooldown's memory ----------------------------------------------------------------------


def last_retrain(lake: Lake, run_id: str | None = None) -> datetime | None:
    """When the last drift-triggered retrain was requested; a retry of that same run does not count."""
    state = lake.read_json(lake.path(*STATE))
    if not state or (run_id is not None and state.get("run_id") == run_id):
        return None
    return datetime.fromisoformat(state["at"])


def record_retrain(lake: Lake, run_id: str, at: datetime, summary: dict[str, Any]) -> None:
    """Remember a drift-triggered retrain request (the cooldown starts now)."""
    lake.write_json(
        lake.path(*STATE),
        {
            "run_id": run_id,
            "at": at.isoformat(),
            "report": summary.get("report"),
            "reasons": summary["verdict"]["reasons"],
        },
    )


# -- outputs -----------------------------------------------------------------------------------


def window_performance(
    params: Params,
    ref: reference.Reference,
    current: pd.DataFrame,
    predict: drift_check.Predict | None,
    live: pd.DataFrame | None = None,
) -> Performance | None:
    """The performance trigger's check on the window's labelled rows; None without labels or a champion.

    With ``live`` (the champion's own predictions of the window with their labels, late ones joined:
    :func:`pipelines.scoring.live_scores`), those scores are judged instead of scoring the window again.
    A window above ``drift.sample_rows`` labelled rows is scored on a seeded sample of them (every
    block of event time keeps its share of rows).
    """
    schema, cfg = params.schema, params.drift
    if live is not None and len(live):
        live = drift_check.sample(live, cfg.sample_rows, cfg.seed + 2)
        evaluated = evaluated_from(ref.champion.version_tags, ref.champion.metrics, cfg.performance_metric)
        judged = check_performance(
            live[schema.target],
            live[SCORE],
            live[schema.event_time],
            evaluated,
            cfg,
            params.promote,
            cfg.seed,
        )
        return replace(judged, source=f"live predictions of {ref.champion.model_uri} with their labels")
    if predict is None or schema.target not in current.columns or not current[schema.target].notna().any():
        return None
    current = drift_check.sample(current[current[schema.target].notna()], cfg.sample_rows, cfg.seed + 2)
    champ = ref.champion
    evaluated = evaluated_from(champ.version_tags, champ.metrics, cfg.performance_metric)
    try:
        proba = predict(current[list(schema.feature_names)])
    except Exception as exc:  # the check's notes say so too; the trigger is not judged
        rows = int(current[schema.target].notna().sum())
        note = f"the champion could not score the window: {str(exc)[:300]}"
        return Performance(cfg.performance_metric, rows, cfg.max_performance_drop, evaluated, note=note)
    classes = schema.classes if schema.task == "multiclass" else None
    return check_performance(
        current[schema.target],
        proba,
        current[schema.event_time],
        evaluated,
        cfg,
        params.promote,
        cfg.seed,
        classes,
    )


def summarize(
    result: DriftResult,
    verdict: Verdict,
    ref: reference.Reference,
    window: Window,
    run_id: str,
    performance: Performance | None = None,
) -> dict[str, Any]:
    """The JSON-able summary of one check: the numbers, the verdict and where it came from."""
    return {
        "run_id": run_id,
        "window": {"start": window.start.isoformat(), "end": window.end.isoformat()},
        "rows_current": result.rows_current,
        "rows_reference": result.rows_reference,
        "champion": ref.champion.model_uri,
        "reference": ref.describe(),
        "drift_share": result.drift_share,
        "drifted_columns": result.drifted_columns,
        "columns": [asdict(c) for c in result.columns],
        "prediction": asdict(result.prediction) if result.prediction else None,
        "roc_auc": result.roc_auc,
        "pr_auc": result.pr_auc,
        "notes": list(result.notes),
        "sampling": result.sampling,
        "performance": (
            {**asdict(performance), "dropped": performance.dropped, "description": performance.describe()}
            if performance is not None
            else None
        ),
        "verdict": asdict(verdict),
    }


def _clean(data: Any) -> Any:
    if isinstance(data, float) and not np.isfinite(data):
        return None
    if isinstance(data, dict):
        return {k: _clean(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_clean(v) for v in data]
    return data


def rendered(check: DriftCheck) -> dict[str, str]:
    """The Evidently report as ``{file name: text}``: HTML and JSON (nothing when Evidently did not run)."""
    if check.snapshot is None:
        return {}
    return {REPORT_HTML: check.snapshot.get_html_str(as_iframe=False), REPORT_JSON: check.snapshot.json()}


def write_reports(lake: Lake, run_id: str, files: dict[str, str], summary: dict[str, Any]) -> dict[str, str]:
    """``report.html`` and ``evidently.json`` (when Evidently ran) and ``summary.json``; their paths."""
    folder = lake.path("reports", "drift", f"run={safe_run_id(run_id)}")
    paths = {"summary": f"{folder}/{SUMMARY_JSON}"}
    for key, name in (("html", REPORT_HTML), ("json", REPORT_JSON)):
        if name in files:
            paths[key] = f"{folder}/{name}"
            lake.write_bytes(paths[key], files[name].encode())
    summary["report"] = paths
    lake.write_json(paths["summary"], _clean(summary))
    return paths


def _metric_name(column: str) -> str:
    return "score." + re.sub(r"[^A-Za-z0-9_./ -]", "_", column)


def log_to_mlflow(
    params: Params,
    settings: Settings,
    check: DriftCheck,
    files: dict[str, str],
    summary: dict[str, Any],
    env: dict[str, str],
) -> str:
    """One run in the monitoring experiment: scores as metrics, verdict as tags, the report as artifacts."""
    import mlflow

    result, cfg = check.result, params.drift
    metrics = {
        "drift_share": result.drift_share,
        "drifted_columns": len(result.drifted_columns),
        "rows_current": result.rows_current,
        "rows_reference": result.rows_reference,
    }
    metrics |= {_metric_name(c.name): c.score for c in result.columns if c.score is not None}
    if result.prediction is not None and result.prediction.score is not None:
        metrics["prediction_drift"] = result.prediction.score
    metrics |= {k: v for k, v in (("roc_auc", result.roc_auc), ("pr_auc", result.pr_auc)) if v is not None}
    metrics |= performance_metrics(summary.get("performance"))
    tags = {
        "flywheel.stage": "drift",
        "flywheel.schema": params.schema.name,
        "flywheel.champion": summary["champion"],
        "flywheel.drift.reference_md5": summary["reference"]["split_md5"],
        "flywheel.drift.verdict": "retrain" if summary["verdict"]["retrain"] else "no_retrain",
        "flywheel.drift.detected": str(summary["verdict"]["drift_detected"]).lower(),
        "flywheel.drift.triggers": ",".join(summary["verdict"].get("triggers") or []) or "none",
        "flywheel.drift.alarm": cfg.alarm,
        "flywheel.drift.reasons": json.dumps(summary["verdict"]["reasons"])[:MAX_TAG],
        "flywheel.drift.report": summary["report"].get("html") or summary["report"]["summary"],
    }
    for var, tag in (("AIRFLOW_CTX_DAG_ID", "airflow.dag_id"), ("AIRFLOW_CTX_DAG_RUN_ID", "airflow.run_id")):
        if env.get(var):
            tags[tag] = env[var]
    experiment_id = ensure_experiment(settings, cfg.experiment)
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=f"drift-{safe_run_id(summary['run_id'])}", tags=tags
    ) as active:
        mlflow.log_params(
            {
                "window_start": summary["window"]["start"],
                "window_end": summary["window"]["end"],
                "num_method": cfg.num_method,
                "cat_method": cfg.cat_method,
                "column_threshold": cfg.column_threshold,
                "alarm": cfg.alarm,
                "null_quantile": cfg.null_quantile,
                "null_windows": cfg.null_windows,
                "min_distance": cfg.min_distance,
                "max_performance_drop": cfg.max_performance_drop,
                "max_drift_share": cfg.max_drift_share,
                "sample_rows": cfg.sample_rows,
                "sampled": result.sampling.get("sampled", False),
            }
        )
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if np.isfinite(v)})
        for name, text in files.items():
            mlflow.log_text(text, f"drift/{name}")
        mlflow.log_text(json.dumps(_clean(summary), indent=2, default=str), f"drift/{SUMMARY_JSON}")
    run_id: str = active.info.run_id
    return run_id


def performance_metrics(performance: dict[str, Any] | None) -> dict[str, float]:
    """The performance check as MLflow metrics: the window's metric, the evaluated one, the interval."""
    if not performance or performance.get("window") is None:
        return {}
    difference, evaluated = performance.get("difference") or {}, performance.get("evaluated") or {}
    out = {
        "performance.window": performance["window"],
        "performance.evaluated": evaluated.get("value"),
        "performance.difference_low": difference.get("low"),
        "performance.difference_high": difference.get("high"),
        "performance.blocks": difference.get("blocks"),
    }
    return {k: float(v) for k, v in out.items() if v is not None}


def describe(summary: dict[str, Any]) -> list[str]:
    """A few lines for a task log or a terminal."""
    verdict = summary["verdict"]
    lines = [
        f"drift check {summary['run_id']}: window [{summary['window']['start']}, {summary['window']['end']}) "
        f"{summary['rows_current']} rows vs {summary['champion']}'s {summary['rows_reference']} training rows"
    ]
    drifted = [c for c in summary["columns"] if c["drifted"]]
    if summary["columns"]:
        lines.append(
            f"data drift: share {summary['drift_share']:.2f}, {len(drifted)} of "
            f"{sum(not c['skipped'] for c in summary['columns'])} columns: "
            + (", ".join(c["name"] for c in drifted) or "none")
        )
    pred, quality = summary.get("prediction"), []
    if pred and pred.get("score") is not None:
        quality.append(
            f"prediction drift {pred['method']} {pred['score']:.3f}{' (drifted)' if pred['drifted'] else ''}"
        )
    if summary.get("roc_auc") is not None:
        quality.append(
            f"champion ROC-AUC {summary['roc_auc']:.3f}, PR-AUC {summary['pr_auc']:.3f} on the window"
        )
    if quality:
        lines.append("; ".join(quality))
    if (summary.get("performance") or {}).get("description"):
        lines.append(summary["performance"]["description"])
    fired = ", ".join(verdict.get("triggers") or [])
    lines.append(
        f"verdict: {'retrain' if verdict['retrain'] else 'no retrain'}"
        + (f" (triggers: {fired})" if fired else "")
        + ": "
        + "; ".join(verdict["reasons"])
    )
    report = summary.get("report") or {}
    lines.append(f"report: {report.get('html') or report.get('summary')}")
    return lines


# -- the stage ---------------------------------------------------------------------------------


def run(
    params: Params,
    settings: Settings,
    run_id: str,
    as_of: datetime | None = None,
    now: datetime | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Check the window ending on ``as_of`` (default: now) for drift against the champion; report; decide.

    Raises:
        NoChampion: nothing is promoted yet.
        ReferenceNotFound: the champion's training data cannot be found in the DVC cache or remote.
        DriftInputError: the window lacks a schema column, or the reference is empty.
    """
    import os

    now = now or datetime.now(UTC)
    cfg, lake = params.drift, Lake(settings.lake_root(params))
    window = Window.ending_on(as_of or now, cfg.window_days)
    ref = reference.find_reference(params, settings)
    current, partitions = current_window(lake, params.schema, window)
    log.info(
        "drift: %d current rows from %d validated partitions, %d reference rows from %s",
        len(current),
        partitions,
        len(ref.frame),
        ref.source,
    )
    classes = params.schema.classes if params.schema.task == "multiclass" else None
    predict = champion_predictor(ref.champion.model_uri, classes) if len(current) >= cfg.min_rows else None
    check = drift_check.compare(ref.frame, current, params.schema, cfg, predict)
    live = live_scores(lake, params.schema, ref.champion.version, window.start, window.end)
    performance = window_performance(params, ref, current, predict, live)
    last = last_retrain(lake, run_id)
    verdict = decide_retrain(check.result, cfg, last, now, performance)
    summary = summarize(check.result, verdict, ref, window, run_id, performance)
    summary["last_retrain_at"] = last.isoformat() if last else None
    files = rendered(check)
    write_reports(lake, run_id, files, summary)
    summary["mlflow_run_id"] = log_to_mlflow(params, settings, check, files, summary, dict(env or os.environ))
    summary["mlflow_experiment_id"] = ensure_experiment(settings, params.drift.experiment)
    lake.write_json(summary["report"]["summary"], _clean(summary))
    for line in describe(summary):
        log.info("%s", line)
    cleaned: dict[str, Any] = _clean(summary)
    return cleaned
