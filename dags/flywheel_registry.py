"""
### flywheel_registry

Registry operations from the Airflow UI, recorded like the command-line ones.

| field | meaning |
|---|---|
| `action` | `rollback`: `previous_champion` back as `champion` in one step; `status`: log aliases, versions |
| `reason` | required for `rollback`; recorded on both versions and in the alias log |

The same operations on the command line: `flywheel rollback --reason ...`, `flywheel status`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag
from flywheel_provider.callbacks import notify_failure
from flywheel_provider.operators.mlflow_registry import MlflowRegistryOperator
from flywheel_provider.timeouts import dagrun_timeout, task_timeout

DEFAULT_ARGS = {"owner": "flywheel", "retries": 2, "on_failure_callback": notify_failure}


@dag(
    dag_id="flywheel_registry",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=dagrun_timeout("registry"),
    default_args=DEFAULT_ARGS,
    tags=["flywheel", "registry"],
    doc_md=__doc__,
    params={
        "action": Param(
            "status",
            type="string",
            enum=["status", "rollback"],
            description="What to do with the registered model.",
        ),
        "reason": Param(
            None,
            type=["null", "string"],
            maxLength=500,
            description="Why; required for rollback and recorded in the registry.",
        ),
    },
)
def flywheel_registry():
    MlflowRegistryOperator(
        task_id="operate",
        action="{{ params.action }}",
        reason="{{ params.reason or '' }}",
        execution_timeout=task_timeout("operate"),
    )


flywheel_registry()
