"""A task past its execution_timeout fails cleanly: named, stopped, its `dvc` pool slot and DVC lock freed.

Real Airflow (``dag.test()`` on the session's metadata DB with Flywheel's pools) runs the real
DvcReproOperator on a real DVC workspace whose stage sleeps far past a ten-second limit.
"""

from __future__ import annotations

import sys
from datetime import timedelta

import pendulum
import psutil
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SLEEPER = (
    f"{sys.executable} -c \"import os, time; open('child.pid', 'w').write(str(os.getpid())); "
    "time.sleep(600); open('slept.txt', 'w').write('done')\""
)


@pytest.fixture
def workspace(demo_install):
    """A DVC workspace with a stage that hangs and one that is quick."""
    import yaml

    from pipelines.workspace import repo

    ws = repo.init(demo_install.settings())
    stages = {
        "hang": {"cmd": SLEEPER, "outs": ["slept.txt"]},
        "quick": {"cmd": "echo ok > quick.txt", "outs": ["quick.txt"]},
    }
    (ws / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    return ws


def probe_dag(stage: str, limit: timedelta, failures: list):
    from airflow.sdk import DAG
    from flywheel_provider.operators.dvc import DvcReproOperator

    def capture(context):
        from flywheel_provider.callbacks import failure_summary

        failures.append((context.get("exception"), failure_summary(context)))

    with DAG(
        f"timeout_probe_{stage}",
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        default_args={"retries": 0, "on_failure_callback": capture},
    ) as dag:
        DvcReproOperator(task_id=stage, stage=stage, pool="dvc", execution_timeout=limit)
    serialize(dag)
    return dag


def serialize(dag) -> None:
    """Write a DAG built here to the metadata DB, as the dag-processor does for a DAG file."""
    import tempfile

    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder=tempfile.mkdtemp())
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)


def survivors(workspace) -> list[str]:
    """Live processes still working in the workspace (dvc repro, the stage's command)."""
    found = []
    for proc in psutil.process_iter(["cwd", "status", "cmdline"]):
        if proc.info["cwd"] == str(workspace) and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(" ".join(proc.info["cmdline"] or []))
    return found


def dvc_pool_slots() -> tuple[int, int]:
    from airflow.models.pool import Pool
    from airflow.utils.session import create_session

    with create_session() as session:
        pool = session.query(Pool).filter(Pool.pool == "dvc").one()
        return pool.slots, pool.occupied_slots(session=session)


def test_a_task_past_its_timeout_fails_naming_the_stage_and_frees_the_dvc_pool(airflow_db, workspace):
    failures: list = []
    run = probe_dag("hang", timedelta(seconds=10), failures).test()
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states == {"hang": "failed"}
    assert len(failures) == 1
    exception, summary = failures[0]
    expected = "stage 'hang' exceeded its execution_timeout of 10 s (timeouts.tasks.hang in params.yaml)"
    assert type(exception).__name__ == "AirflowTaskTimeout" and expected in str(exception)
    assert expected in summary["error"]

    assert survivors(workspace) == []  # dvc and the stage's own process (two levels down) were stopped
    assert not (workspace / "slept.txt").exists()  # nothing partial: the stage's output never appeared
    assert dvc_pool_slots() == (1, 0)

    # The slot and DVC's lock are free: the next stage in the pool runs at once.
    after = probe_dag("quick", timedelta(minutes=5), failures).test()
    assert {ti.task_id: ti.state for ti in after.get_task_instances()} == {"quick": "success"}
    assert (workspace / "quick.txt").read_text().strip() == "ok" and len(failures) == 1
