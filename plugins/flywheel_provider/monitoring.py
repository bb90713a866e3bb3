"""Task bodies of ``flywheel_drift`` and the trigger bookkeeping of ``flywheel_training``.

Imported inside the task callables, so parsing a DAG file never loads Evidently,
MLflow or torch.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from flywheel_provider.assets import DRIFT_DETECTED
from flywheel_provider.hooks.flywheel import FlywheelHook

log = logging.getLogger(__name__)


def check_drift(run_id: str, as_of: datetime | None) -> dict:
    """Run the drift check; skip when there is no champion yet, fail clearly when the inputs are wrong."""
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from pipelines.common.config import ParamsError
    from pipelines.drift import stage as drift
    from pipelines.report import summary as report

    hook = FlywheelHook()
    try:
        params, settings = hook.params(), hook.settings()
        summary = drift.run(params, settings, run_id, as_of=as_of)
    except drift.NoChampion as exc:
        raise AirflowSkipException(f"no drift check: {exc}") from None
    except (ParamsError, drift.ReferenceNotFound, drift.DriftInputError) as exc:  # a retry cannot help
        raise AirflowFailException(str(exc)) from None
    report.write(settings, "flywheel_drift", run_id, summary)
    return {
        k: summary.get(k)
        for k in (
            "run_id",
            "window",
            "rows_current",
            "champion",
            "drift_share",
            "drifted_columns",
            "roc_auc",
            "pr_auc",
            "verdict",
            "report",
        )
    }


def trigger_retrain(summary: dict, run_id: str, outlet: Any) -> dict:
    """On a retrain verdict, start the cooldown and emit ``drift_detected`` with the evidence; else skip."""
    from airflow.sdk.exceptions import AirflowSkipException

    from pipelines.common.lake import Lake
    from pipelines.drift import stage as drift

    verdict = summary["verdict"]
    if not verdict["retrain"]:  # no asset event: flywheel_training is not triggered
        raise AirflowSkipException("; ".join(verdict["reasons"]))
    hook = FlywheelHook()
    drift.record_retrain(Lake(hook.settings().lake_root(hook.params())), run_id, datetime.now(UTC), summary)
    extra = {
        "drift_share": summary["drift_share"],
        "drifted_columns": summary["drifted_columns"],
        "report": (summary.get("report") or {}).get("html") or (summary.get("report") or {}).get("summary"),
        "reasons": verdict["reasons"],
        "champion": summary["champion"],
        "run_id": run_id,
    }
    outlet.extra = extra
    log.info("drift_detected: %s", extra)
    return extra


def asset_events(triggering: Any) -> tuple[list[dict], list[dict]]:
    """``(drift_detected events, other events)`` of a run's ``triggering_asset_events``, as plain dicts."""
    drift, other = [], []
    for asset, events in (triggering or {}).items():
        for event in events:
            plain = {
                "uri": asset.uri,
                "extra": dict(event.extra or {}),
                "source_dag_id": event.source_dag_id,
                "source_run_id": event.source_run_id,
                "timestamp": str(event.timestamp),
            }
            (drift if asset.uri == DRIFT_DETECTED.uri else other).append(plain)
    return drift, other


def training_trigger(run_type: Any, triggering: Any) -> dict:
    """Why this training run ran, as a JSON-able dict (kind, summary, details)."""
    from dataclasses import asdict

    from pipelines.train import trigger as triggers

    drift, other = asset_events(triggering)
    return asdict(triggers.reason(str(getattr(run_type, "value", run_type)), drift, other))


def record_trigger(run: dict, promotion: dict) -> dict:
    """Tag a newly registered version and its run with why the training ran (an old model keeps its tags)."""
    from pipelines.train import trigger as triggers

    why = run.get("trigger_reason")
    if not why or not promotion.get("registered_now"):
        return {}
    return triggers.record(
        FlywheelHook().settings(),
        promotion["model_name"],
        promotion["version"],
        promotion["mlflow_run_id"],
        triggers.TriggerReason(**why),
    )
