"""
### flywheel_ingest

Lands new source records and runs the validation gate.

1. **ingest**: reads each source of `ingest.sources` in params.yaml (or of the run's `sources` param):
   `kafka` drains the consumer group's backlog up to the end offsets seen at the start and commits the
   offsets only after the partition and its manifest are written; `s3` lands the new objects under
   `ingest.s3.url` (remembered by key and ETag); `files` the new files under `ingest.files.path`. Each
   source lands one immutable partition of the landing tier and quarantines malformed records with a
   reason each (`consumed == landed + quarantined`). Brokers and the S3 API come from the Connections
   `flywheel_kafka` and `flywheel_s3`, else `FLYWHEEL_KAFKA_BOOTSTRAP` (127.0.0.1:9092) and `AWS_*`;
   an unreachable one fails the task naming it, after retries with backoff.
2. **validate**: runs the Great Expectations suite generated from the schema on every landed batch not yet
   judged. A passing batch enters the validated tier and the `validated_events` asset is published with
   the counts; a failing batch is rejected (never reaches training) and the task fails, naming the failed
   expectations. The GX result JSON and Data Docs sit under `lake/reports/validation/`.

Retrying a run rewrites its own partition; nothing already landed is lost. Events landed twice (a run
that crashed between writing and committing) enter the validated tier once.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import CronTriggerTimetable, Param, dag, task
from flywheel_provider.assets import VALIDATED_EVENTS
from flywheel_provider.callbacks import notify_failure
from flywheel_provider.links import DataDocsLink, linked_task
from flywheel_provider.schedules import cron_from_params
from flywheel_provider.timeouts import dagrun_timeout, task_timeout

# retry_delay: [core] default_task_retry_delay (AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY).
DEFAULT_ARGS = {
    "owner": "flywheel",
    "retries": 2,
    "retry_exponential_backoff": True,
    "on_failure_callback": notify_failure,
}


@dag(
    dag_id="flywheel_ingest",
    schedule=CronTriggerTimetable(cron_from_params("ingest"), timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=dagrun_timeout("ingest"),
    default_args=DEFAULT_ARGS,
    tags=["flywheel", "ingestion"],
    doc_md=__doc__,
    params={
        "sources": Param(
            None,
            type=["null", "array"],
            items={"enum": ["files", "kafka", "s3"]},
            description="sources to read this run; empty: ingest.sources in params.yaml",
        )
    },
)
def flywheel_ingest():
    @task(execution_timeout=task_timeout("ingest"))
    def ingest(run_id=None, params=None) -> dict:
        from flywheel_provider.tasks.ingest import ingest_sources

        return ingest_sources(run_id, (params or {}).get("sources"))

    @linked_task(DataDocsLink, outlets=[VALIDATED_EVENTS], execution_timeout=task_timeout("validate"))
    def validate(landed: dict, outlet_events=None, run_id=None) -> dict:
        from flywheel_provider.tasks.ingest import validate_and_publish

        return validate_and_publish(landed, run_id, outlet_events[VALIDATED_EVENTS])

    validate(ingest())


flywheel_ingest()
