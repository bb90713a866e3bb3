"""Why a training run ran: the nightly schedule, a person, or detected drift (with its report).

:func:`reason` is pure: the orchestrator hands in the run type and the asset
events that triggered the run, as plain dicts; :func:`record` writes the answer
as ``flywheel.trigger.*`` tags on the MLflow run and on the model version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pipelines.common import tracking
from pipelines.common.settings import Settings
from pipelines.common.tracking import MAX_TAG

_KINDS = {"scheduled": "schedule", "manual": "manual", "backfill": "backfill", "asset_triggered": "asset"}


@dataclass(frozen=True)
class TriggerReason:
    """What started a run and a line saying why.

    ``kind`` is one of ``drift``, ``schedule``, ``manual``, ``asset``, ``backfill``.
    """

    kind: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


def _drift_reason(events: list[dict[str, Any]]) -> TriggerReason:
    latest = max(events, key=lambda e: str(e.get("timestamp") or ""))
    extra = latest.get("extra") or {}
    share, columns = extra.get("drift_share"), extra.get("drifted_columns") or []
    source = latest.get("source_dag_id") or "a drift check"
    parts = [f"drift detected by {source} run {latest.get('source_run_id')}"]
    reasons = [str(r) for r in extra.get("reasons") or []]
    if reasons:
        parts += reasons[:3]
    elif share is not None:
        parts.append(f"drift share {float(share):.2f}" + (f" ({', '.join(columns)})" if columns else ""))
    if extra.get("report"):
        parts.append(f"report {extra['report']}")
    details = {
        "report": extra.get("report"),
        "drift_share": share,
        "drifted_columns": columns,
        "reasons": extra.get("reasons") or [],
        "source_dag_id": latest.get("source_dag_id"),
        "source_run_id": latest.get("source_run_id"),
        "events": len(events),
    }
    return TriggerReason("drift", "; ".join(parts), details)


def reason(
    run_type: str,
    drift_events: list[dict[str, Any]] | None = None,
    other_events: list[dict[str, Any]] | None = None,
) -> TriggerReason:
    """Why a run ran, from its run type and the asset events it consumed.

    A ``drift_detected`` event wins over the run type (an asset-triggered run
    consumes the events queued since the last one; the latest names the report).
    """
    if drift_events:
        return _drift_reason(drift_events)
    kind = _KINDS.get(str(run_type), str(run_type))
    if other_events:
        uris = sorted({str(e.get("uri")) for e in other_events})
        return TriggerReason("asset", f"asset update of {', '.join(uris)}", {"assets": uris})
    text = {
        "schedule": "the training schedule (train.schedule)",
        "manual": "a manual trigger",
        "backfill": "a backfill",
    }.get(kind, f"run type {kind}")
    return TriggerReason(kind, text)


def tags(why: TriggerReason) -> dict[str, str]:
    """``flywheel.trigger`` and its details as MLflow tags."""
    out = {"flywheel.trigger": why.kind, "flywheel.trigger.reason": why.summary[:MAX_TAG]}
    details = why.details
    if details.get("report"):
        out["flywheel.trigger.report"] = str(details["report"])
    if details.get("drift_share") is not None:
        out["flywheel.trigger.drift_share"] = f"{float(details['drift_share']):.4f}"
    if details.get("drifted_columns"):
        out["flywheel.trigger.drifted_columns"] = json.dumps(details["drifted_columns"])[:MAX_TAG]
    if details.get("source_run_id"):
        out["flywheel.trigger.source"] = f"{details.get('source_dag_id')}/{details['source_run_id']}"
    return out


def record(
    settings: Settings, model_name: str, version: str, run_id: str, why: TriggerReason
) -> dict[str, str]:
    """Tag the training run and its model version with why the run happened; return the tags."""
    client = tracking.client(settings)
    written = tags(why)
    for key, value in written.items():
        client.set_tag(run_id, key, value)
        client.set_model_version_tag(model_name, version, key, value)
    return written
