"""
### flywheel_drift

Watches the validated events for drift against the champion's training data and asks for a retrain.

Runs when `flywheel_ingest` publishes `validated_events`, and on `schedules.drift` (params.yaml) as a
fallback.

1. **check**: the current window (`drift.window_days` of validated events ending on the run's logical date)
   against the champion's reference rows, found through its lineage (`models:/<model>@champion` → its MLflow
   run → the `data/split` md5 in `dvc.lock` → the DVC cache or remote). Evidently reports data drift per
   column and overall, prediction drift of the champion, and its ROC-AUC/PR-AUC when the window is labelled;
   the HTML and JSON report lands in `lake/reports/drift/run=<run>/` and in an MLflow run of
   `drift.experiment`.
   Skipped while there is no champion; fails without retries when the reference or a column is missing.
2. **trigger_retrain**: on a retrain verdict (drift share ≥ `drift.max_drift_share`, a `critical` column
   drifted, or ROC-AUC below `drift.min_roc_auc`; never under `drift.min_rows` rows, never twice within
   `drift.cooldown_hours`) emits `drift_detected` with the share, the drifted columns and the report's
   location, which triggers `flywheel_training`. Otherwise skipped, so no event is emitted.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag, task
from flywheel_provider.assets import DRIFT_DETECTED, VALIDATED_EVENTS
from flywheel_provider.callbacks import notify_failure
from flywheel_provider.links import DriftReportLink, MlflowRunLink, linked_task
from flywheel_provider.schedules import cron_from_params
from flywheel_provider.timeouts import dagrun_timeout, task_timeout

# retry_delay: [core] default_task_retry_delay (AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY).
DEFAULT_ARGS = {"owner": "flywheel", "retries": 2, "on_failure_callback": notify_failure}


@dag(
    dag_id="flywheel_drift",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(cron_from_params("drift"), timezone="UTC"),
        assets=VALIDATED_EVENTS,
    ),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=dagrun_timeout("drift"),
    default_args=DEFAULT_ARGS,
    tags=["flywheel", "monitoring"],
    doc_md=__doc__,
)
def flywheel_drift():
    @linked_task(DriftReportLink, MlflowRunLink, execution_timeout=task_timeout("check"))
    def check(logical_date=None, dag_run=None, run_id=None) -> dict:
        from flywheel_provider.tasks.drift import check_drift

        return check_drift(run_id, logical_date or dag_run.run_after)

    @task(outlets=[DRIFT_DETECTED], execution_timeout=task_timeout("trigger_retrain"))
    def trigger_retrain(summary: dict, outlet_events=None, run_id=None) -> dict:
        from flywheel_provider.tasks.drift import trigger_retrain as emit

        return emit(summary, run_id, outlet_events[DRIFT_DETECTED])

    trigger_retrain(check())


flywheel_drift()
