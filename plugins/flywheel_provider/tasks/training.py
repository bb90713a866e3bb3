"""Task bodies of ``flywheel_training``: the trigger form and why the run ran, promotion, the run record.

Imported inside the task callables, so parsing a DAG file never loads torch, MLflow or DVC.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from flywheel_provider.assets import DRIFT_DETECTED
from flywheel_provider.hooks.flywheel import FlywheelHook

log = logging.getLogger(__name__)
AIRFLOW_API_CONN = "flywheel_airflow_api"  # AirflowApiHook.default_conn_name


def prepare_training(
    form: dict, logical_date: datetime | None, run_type: Any, triggering: Any = None, run_id: str = "local"
) -> dict:
    """Check the trigger form, then sync the workspace with this run's parameters; say why the run ran."""
    from airflow.sdk.exceptions import AirflowFailException

    from pipelines import workspace
    from pipelines.common.config import ParamsError
    from pipelines.train.form import training_overrides

    settings = FlywheelHook().settings()
    try:
        overrides = training_overrides(form, logical_date)
        refuse_concurrent_runs()
        with workspace.attached(settings, run_id, "the run's params"):  # a shared remote: fetch, push
            workspace.init(settings)
            workspace.sync(settings, overrides)
    except ParamsError as exc:  # a bad form or params.yaml: retrying cannot help
        raise AirflowFailException(str(exc)) from None
    why = training_trigger(run_type, triggering)  # schedule, manual, or drift with its report
    log.info("training run: trigger %s (%s), overrides %s", why["kind"], why["summary"], overrides)
    return {
        "trigger": why["kind"],
        "trigger_reason": why,
        "overrides": overrides,
        "force_promote": bool(form.get("force_promote")),
        "force_reason": form.get("force_reason") or None,
    }


def refuse_concurrent_runs() -> None:
    """Fail this run when another run of its DAG is running: both would write the one DVC workspace.

    ``max_active_runs=1`` serialises scheduled and manual runs, but a backfill has its own limit
    (``airflow backfill create --max-active-runs``, default 10), and interleaved runs would train
    on each other's snapshot. Refusing is loud; the fix is in the message.
    """
    from airflow.sdk import get_current_context
    from airflow.sdk.exceptions import AirflowFailException

    ti = get_current_context()["ti"]
    running = ti.get_dr_count(dag_id=ti.dag_id, states=["running"])
    if running > 1:
        raise AirflowFailException(
            f"{running} runs of {ti.dag_id} are running at once, and they would share one DVC workspace; "
            f"expected one at a time: backfill with `airflow backfill create --dag-id {ti.dag_id} "
            "--from-date ... --to-date ... --max-active-runs 1` (or `make backfill`), "
            "then clear the failed runs"
        )


def promote_model(run: dict, run_id: str = "local") -> dict:
    """Register the trained model and let the gate decide on the ``champion`` alias; record why it ran;
    commit the workspace (``dvc.lock``), push to the DVC remote, and tag the version with the commit.

    The sequence of ``flywheel repro``, in the one process that has MLflow loaded already. Returns the
    promotion with ``workspace_commit`` and the evaluation's ``metrics``, for **record**'s run report.
    """
    import json

    from pipelines import promote, workspace
    from pipelines.common.config import load_params
    from pipelines.promote import registry

    settings = FlywheelHook().settings()
    with workspace.attached(settings, run_id, "promote", merge=True):  # a shared remote: main moves too
        params = load_params(settings.workspace / "params.yaml")
        promotion = promote.run(
            params,
            settings,
            settings.workspace,
            force=run["force_promote"],
            force_reason=run["force_reason"],
            trigger=run["trigger"],
        )
        commit = workspace.commit(settings, f"flywheel_training {run_id}: model v{promotion.get('version')}")
        registry.tag_workspace_commit(settings, promotion, commit)
        metrics_path = settings.workspace / "metrics" / "evaluate.json"
        metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    trigger_tags = record_trigger(run, promotion)
    return {**promotion, "trigger_tags": trigger_tags, "workspace_commit": commit, "metrics": metrics}


def record_training(run: dict, outcomes: dict, promotion: dict, run_id: str) -> dict:
    """Write the run report (why it ran, each stage, the promotion, the metrics, the workspace commit)
    and put the gate's decision on the run as its note."""
    from pipelines import promote, report

    hook = FlywheelHook()
    promotion = dict(promotion)
    metrics, commit = promotion.pop("metrics", {}), promotion.pop("workspace_commit", None)
    data = {
        "trigger": run["trigger"],
        "trigger_reason": run.get("trigger_reason"),
        "overrides": run["overrides"],
        "stages": {name: out["outcome"] for name, out in outcomes.items()},
        "stage_seconds": {name: out["seconds"] for name, out in outcomes.items()},
        "promotion": promotion,
        "metrics": metrics,
        "workspace_commit": commit,
    }
    data["note"] = promote.run_note(promotion)
    report.write(hook.params(), hook.settings(), "flywheel_training", run_id, data)
    set_run_note("flywheel_training", run_id, data["note"])
    return data


def set_run_note(dag_id: str, run_id: str, note: str) -> bool:
    """Put ``note`` on the DAG run through Airflow's REST API; False (logged) without API credentials.

    A task cannot set its own run's note through the execution API, so the public API does it, with the
    Connection ``flywheel_airflow_api`` (:class:`AirflowApiHook`: host and port of the API server, login,
    password). A note is a courtesy: an API that does not answer is logged, never fails the run.
    """
    from flywheel_provider.hooks.airflow_api import AirflowApiHook

    hook = AirflowApiHook(AIRFLOW_API_CONN)
    try:
        api = hook.get_conn()
    except Exception:  # no Connection: the note stays in the run report and the log
        log.info("run note (no %s Connection, not set in the UI): %s", AIRFLOW_API_CONN, note)
        return False
    try:
        api.set_note(dag_id, run_id, note)
    except Exception as exc:  # the run's work is done; a missing note must not fail it
        log.warning("run note not set through %s: %s; note: %s", api.base_url, exc, note)
        return False
    log.info("run note: %s", note)
    return True


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

    from pipelines.train import trigger

    drift, other = asset_events(triggering)
    return asdict(trigger.reason(str(getattr(run_type, "value", run_type)), drift, other))


def record_trigger(run: dict, promotion: dict) -> dict:
    """Tag a newly registered version and its run with why the training ran (an old model keeps its tags)."""
    from pipelines.train import trigger

    why = run.get("trigger_reason")
    if not why or not promotion.get("registered_now"):
        return {}
    return trigger.record(
        FlywheelHook().settings(),
        promotion["model_name"],
        promotion["version"],
        promotion["mlflow_run_id"],
        trigger.TriggerReason(**why),
    )
