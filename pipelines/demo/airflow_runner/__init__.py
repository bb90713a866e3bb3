"""The embedded Airflow of ``make run`` and the end-to-end tests: start it, trigger and follow runs, stop it.

The real scheduler drives the loop: a triggered ``flywheel_ingest`` publishes ``validated_events``, the
scheduler creates the asset-triggered ``flywheel_drift`` run, whose ``drift_detected`` event makes it create
the asset-triggered ``flywheel_training`` run. This package never touches Airflow's internals: it starts
Airflow's own processes and talks to them through the public REST API (``/api/v2``, a JWT from
``/auth/token``) with the product's client, :mod:`pipelines.common.airflow_api`.

Airflow runs as three background processes on the LocalExecutor, each recorded by PID (and start time) in
``$AIRFLOW_HOME/processes`` by :class:`~pipelines.demo.services.supervisor.Supervisor`, logs in
``processes/logs``: ``dag-processor``, ``scheduler`` and ``api-server`` (REST API, UI, and the execution API
the tasks report to) on 127.0.0.1 and a free port. No triggerer: no Flywheel task defers.

DAGs are created paused: on a fresh database the scheduler starts a DAG's latest missed cron slot as soon
as it is unpaused (``catchup=False`` runs the latest one). :func:`start` unpauses the DAGs it is given; a
DAG left paused (in ``make run``, ``flywheel_ingest`` and ``flywheel_training``, whose slot would run on an
empty lake) is unpaused by its first trigger, whose manual run takes the due slot's logical date, so the
scheduler does not run that slot as well.

    python -m pipelines.demo.airflow_runner start --dag flywheel_drift
    python -m pipelines.demo.airflow_runner trigger flywheel_ingest --conf '{"sources": ["kafka"]}' \\
        --then flywheel_drift
    python -m pipelines.demo.airflow_runner stop
"""

from __future__ import annotations

from pipelines.common.airflow_api import AirflowApi, AirflowApiError, run_path
from pipelines.demo.airflow_runner.processes import connect, running, start, stop
from pipelines.demo.airflow_runner.rest import (
    find_runs,
    run_status,
    trigger,
    trigger_and_follow,
    unpause,
    wait_asset_triggered,
    wait_run,
)
from pipelines.demo.airflow_runner.runs import AirflowRunError, RunStatus

__all__ = [
    "AirflowApi",
    "AirflowApiError",
    "AirflowRunError",
    "RunStatus",
    "connect",
    "find_runs",
    "run_path",
    "run_status",
    "running",
    "start",
    "stop",
    "trigger",
    "trigger_and_follow",
    "unpause",
    "wait_asset_triggered",
    "wait_run",
]
