"""
### flywheel_training

Retrains the model on the validated window and promotes it when it earns it.

Runs nightly (`schedules.training` in params.yaml), when the `drift_detected` asset is updated, or by hand
from the trigger form:

| field | meaning |
|---|---|
| `window_days` | train on a sliding window of this many days of validated events (empty: `snapshot.window`) |
| `epochs` | training epochs (empty: `train.epochs`) |
| `learning_rate` | Adam learning rate, in (0, 1] (empty: `train.learning_rate`) |
| `force_promote` | promote even if the gate says no |
| `force_reason` | required with `force_promote`; recorded on the model version |

A value of the wrong type or out of range is refused by the form (and the REST API) before a run is
created. `force_promote` without `force_reason` is refused by **prepare**, the first task, before any work:
Airflow validates each field on its own, so a rule across two fields cannot live in the form.

**Backfill**: a run trains on the window ending on its logical date, so
`airflow backfill create --dag-id flywheel_training --from-date ... --to-date ... --max-active-runs 1`
(or `make backfill`) gives one run per date, and a cleared date re-runs to the same outputs (DVC restores
featurize, train and evaluate from its run cache; the model version is the same). Runs share one DVC
workspace: one at a time, and **prepare** refuses a run while another one is running.

Tasks: **prepare** (sync `dvc.yaml` and the run's `params.yaml` into the DVC workspace) → **snapshot** →
**featurize** → **train** (pool `gpu`) → **evaluate** (each `dvc repro` of its stage: DVC skips what did not
change) → **promote** (register; move `champion` only if the gate passes, keeping `previous_champion`;
commit `dvc.lock` in the workspace, push to the DVC remote, tag the version with the commit) → **record**
(write the run report, put the gate's decision on the run as its note).

Every run says why it ran: **prepare** reads the triggering asset events, and a new model version and its
MLflow run get `flywheel.trigger` (`schedule`, `manual`, or `drift`) and `flywheel.trigger.reason`; a drift
trigger adds the drift report's location, the drift share and the drifted columns.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, chain, dag, task
from flywheel_provider.assets import DRIFT_DETECTED
from flywheel_provider.callbacks import notify_failure
from flywheel_provider.links import MlflowModelVersionLink, MlflowRunLink, linked_task
from flywheel_provider.operators.dvc import DvcReproOperator, DvcTrainOperator
from flywheel_provider.schedules import cron_from_params
from flywheel_provider.timeouts import dagrun_timeout, task_timeout

# retry_delay: [core] default_task_retry_delay (AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY).
DEFAULT_ARGS = {"owner": "flywheel", "retries": 2, "on_failure_callback": notify_failure}


@dag(
    dag_id="flywheel_training",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(cron_from_params("training"), timezone="UTC"),
        assets=DRIFT_DETECTED,
    ),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=dagrun_timeout("training"),
    default_args=DEFAULT_ARGS,
    tags=["flywheel", "training"],
    doc_md=__doc__,
    params={
        "window_days": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            maximum=3650,
            description="Train on a sliding window of this many days; empty keeps params.yaml's window.",
        ),
        "epochs": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            maximum=1000,
            description="Training epochs; empty keeps params.yaml's.",
        ),
        "learning_rate": Param(
            None,
            type=["null", "number"],
            exclusiveMinimum=0,
            maximum=1,
            description="Adam learning rate, > 0 and <= 1; empty keeps params.yaml's.",
        ),
        "force_promote": Param(
            False, type="boolean", description="Promote even if the evaluation gate says no (needs a reason)."
        ),
        "force_reason": Param(
            None,
            type=["null", "string"],
            maxLength=500,
            description="Why the promotion is forced (required with force_promote); "
            "recorded on the model version.",
        ),
    },
)
def flywheel_training():
    @task(execution_timeout=task_timeout("prepare"))
    def prepare(params=None, logical_date=None, dag_run=None, triggering_asset_events=None) -> dict:
        from flywheel_provider.tasks.training import prepare_training

        return prepare_training(
            dict(params), logical_date, dag_run.run_type, triggering_asset_events, dag_run.run_id
        )

    stages = [
        DvcReproOperator(task_id="snapshot", stage="snapshot", pool="dvc"),
        DvcReproOperator(task_id="featurize", stage="featurize", pool="dvc"),
        # The full stack routes training to its GPU workers (FLYWHEEL_TRAIN_QUEUE=gpu in docker-compose.yml).
        DvcTrainOperator(
            task_id="train",
            stage="train",
            pool="gpu",
            execution_timeout=task_timeout("train"),
            queue=os.environ.get("FLYWHEEL_TRAIN_QUEUE", "default"),
        ),
        DvcReproOperator(task_id="evaluate", stage="evaluate", pool="dvc"),
    ]

    @linked_task(MlflowRunLink, MlflowModelVersionLink, pool="dvc", execution_timeout=task_timeout("promote"))
    def promote(run: dict, run_id=None) -> dict:
        from flywheel_provider.tasks.training import promote_model

        return promote_model(run, run_id)

    @task(pool="dvc", execution_timeout=task_timeout("record"))
    def record(run: dict, outcomes: dict, promotion: dict, run_id=None) -> dict:
        from flywheel_provider.tasks.training import record_training

        return record_training(run, outcomes, promotion, run_id)

    run = prepare()
    promotion = promote(run)
    chain(run, *stages, promotion)
    record(run, {s.task_id: s.output for s in stages}, promotion)


flywheel_training()
