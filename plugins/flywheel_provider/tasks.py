"""Task bodies of Flywheel's DAGs: a few lines each, calling into ``pipelines``.

Imported inside the task callables, so parsing a DAG file never loads torch,
MLflow or Great Expectations.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from flywheel_provider.hooks.flywheel import FlywheelHook

log = logging.getLogger(__name__)


def ingest_sources(run_id: str, sources: list[str] | None = None) -> dict:
    """Land one run from each source: the run's ``sources`` param, else ``ingest.sources`` in params.

    Endpoints come from the ``flywheel_kafka`` / ``flywheel_s3`` Connections, else the environment. An
    unreachable broker or S3 API raises naming it; the task's retries (with backoff) try again.
    """
    from flywheel_provider.hooks.kafka_ingest import KafkaIngestHook
    from flywheel_provider.hooks.s3_ingest import S3IngestHook
    from pipelines.ingest import stage

    hook = FlywheelHook()
    params = hook.params()
    names = list(sources or params.ingest.sources)
    kafka = KafkaIngestHook().endpoint() if "kafka" in names else None
    s3 = S3IngestHook().endpoint() if "s3" in names else None
    return stage.run(params, hook.settings(), run_id=run_id, sources=names, kafka=kafka, s3=s3)


def validate_and_publish(landed: dict, run_id: str, outlet: Any) -> dict:
    """Run the gate; publish ``validated_events`` with the counts, or fail naming what was rejected."""
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from pipelines.report import summary as report
    from pipelines.validate import stage as validate

    hook = FlywheelHook()
    settings = hook.settings()
    summary = validate.run(hook.params(), settings)
    report.write(settings, "flywheel_ingest", run_id, {"ingest": landed, "validate": summary})
    if summary["verdict"] == "nothing_to_validate":  # no new data: no asset event, nothing downstream
        raise AirflowSkipException("no new landed batches to validate")
    if summary["verdict"] == "pass" and not summary["validated_rows"]:  # only copies of validated events
        raise AirflowSkipException("no new events: every landed row was already in the validated tier")
    outlet.extra = {
        "landed": landed.get("landed", 0),
        "quarantined": landed.get("quarantined", 0),
        "validated_rows": summary["validated_rows"],
        "verdict": summary["verdict"],
    }
    if summary["verdict"] == "fail":
        raise AirflowFailException(validate.describe_rejections(summary))
    return summary


def prepare_training(
    form: dict, logical_date: datetime | None, run_type: Any, triggering: Any = None
) -> dict:
    """Check the trigger form, then sync the workspace with this run's parameters; say why the run ran."""
    from airflow.sdk.exceptions import AirflowFailException

    from flywheel_provider.monitoring import training_trigger
    from pipelines.common.config import ParamsError
    from pipelines.train import form as runs
    from pipelines.workspace import repo as workspace

    settings = FlywheelHook().settings()
    try:
        overrides = runs.training_overrides(form, logical_date)
        refuse_concurrent_runs()
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
            "--from-date ... --to-date ... --max-active-runs 1` (or `make backfill`), then clear the failed runs"
        )


def promote_model(run: dict) -> dict:
    """Register the trained model and let the gate decide on the ``champion`` alias; record why it ran."""
    from flywheel_provider.monitoring import record_trigger
    from pipelines.common.config import load_params
    from pipelines.promote import stage as promote

    settings = FlywheelHook().settings()
    params = load_params(settings.workspace / "params.yaml")
    promotion = promote.run(
        params,
        settings,
        settings.workspace,
        force=run["force_promote"],
        force_reason=run["force_reason"],
        trigger=run["trigger"],
    )
    return {**promotion, "trigger_tags": record_trigger(run, promotion)}


def record_training(run: dict, outcomes: dict, promotion: dict, run_id: str) -> dict:
    """Commit the workspace (dvc.lock), push to the DVC remote and write the run report."""
    import json

    from pipelines.promote import registry
    from pipelines.report import summary as report
    from pipelines.workspace import repo as workspace

    settings = FlywheelHook().settings()
    commit = workspace.commit(settings, f"flywheel_training {run_id}: model v{promotion.get('version')}")
    registry.tag_workspace_commit(settings, promotion, commit)
    metrics_path = settings.workspace / "metrics" / "evaluate.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
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
    report.write(settings, "flywheel_training", run_id, data)
    return data
