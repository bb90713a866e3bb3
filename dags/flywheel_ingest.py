"""
### flywheel_ingest

Lands new source records and runs the validation gate.

1. **ingest**: reads the new files under `ingest.files.path` (params.yaml), lands them as one immutable
   partition of the landing tier and quarantines malformed records with a reason each
   (`consumed == landed + quarantined`).
2. **validate**: runs the Great Expectations suite generated from the schema on every landed batch not yet
   judged. A passing batch enters the validated tier and the `validated_events` asset is published with
   the counts; a failing batch is rejected (never reaches training) and the task fails, naming the failed
   expectations. The GX result JSON and Data Docs sit under `lake/reports/validation/`.

Retrying a run rewrites its own partition; nothing already landed is lost.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import CronTriggerTimetable, dag, task
from flywheel_provider.assets import VALIDATED_EVENTS
from flywheel_provider.schedules import cron_from_params

# retry_delay: [core] default_task_retry_delay (AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY).
DEFAULT_ARGS = {"owner": "flywheel", "retries": 2, "retry_exponential_backoff": True}


@dag(
    dag_id="flywheel_ingest",
    schedule=CronTriggerTimetable(cron_from_params("ingest", "*/15 * * * *"), timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["flywheel", "ingestion"],
    doc_md=__doc__,
)
def flywheel_ingest():
    @task
    def ingest(run_id=None) -> dict:
        from flywheel_provider.hooks.flywheel import FlywheelHook

        from pipelines import ingest as stage

        hook = FlywheelHook()
        return stage.run(hook.params(), hook.settings(), run_id=run_id)

    @task(outlets=[VALIDATED_EVENTS])
    def validate(landed: dict, outlet_events=None, run_id=None) -> dict:
        from flywheel_provider.tasks import validate_and_publish

        return validate_and_publish(landed, run_id, outlet_events[VALIDATED_EVENTS])

    validate(ingest())


flywheel_ingest()
