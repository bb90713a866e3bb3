"""
### flywheel_scoring

The champion scores every newly validated event, exactly once, and its live performance is measured.

Runs when `flywheel_ingest` publishes `validated_events`.

1. **score**: asks the registry for the model under the `champion` alias (once per run: a new champion
   scores from the next run on) and scores each validated partition that has no predictions yet into
   `lake/predictions/source=<src>/run=<run>/` (event key, event time, score, predicted class, the label
   when known, model name, version and run, this run's id), writing each partition's `_manifest.json`
   last. A rerun, or a run after a crash, skips what the manifests hold and redoes a partition written
   without one. With `score.publish_topic` set, predictions also go to that Kafka topic (brokers: the
   `flywheel_kafka` Connection). Skipped while there is no champion.
2. **measure**: joins late labels to the predictions and scores the champion per day with a
   block-bootstrap interval (`reports/performance/live.json` in the lake); the drift check's
   performance trigger reads the same live scores.

Rescoring what an earlier champion scored is deliberate: `flywheel score --rescore`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task
from flywheel_provider.assets import VALIDATED_EVENTS
from flywheel_provider.callbacks import notify_failure
from flywheel_provider.timeouts import dagrun_timeout, task_timeout

# retry_delay: [core] default_task_retry_delay (AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY).
DEFAULT_ARGS = {
    "owner": "flywheel",
    "retries": 2,
    "on_failure_callback": notify_failure,
}


@dag(
    dag_id="flywheel_scoring",
    schedule=VALIDATED_EVENTS,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=dagrun_timeout("scoring"),
    default_args=DEFAULT_ARGS,
    tags=["flywheel", "scoring"],
    doc_md=__doc__,
)
def flywheel_scoring():
    @task(execution_timeout=task_timeout("score"))
    def score(run_id=None) -> dict:
        from flywheel_provider.tasks.scoring import score_events

        return score_events(run_id)

    @task(execution_timeout=task_timeout("measure"))
    def measure(scored: dict, run_id=None) -> dict:
        from flywheel_provider.tasks.scoring import measure_live

        return measure_live(scored, run_id)

    measure(score())


flywheel_scoring()
