"""One asset-triggered run of a DAG, in this process: what the scheduler does, for the embedded demo and tests.

``airflow dags test`` and ``dag.test()`` always create a manual run that consumed no
asset events. On a running stack the scheduler creates the asset-triggered run
itself and attaches the asset events it consumes (tasks read them as
``triggering_asset_events``). :func:`run_asset_triggered` does that part of the
scheduler's job (collect the DAG's pending asset events, attach them to the run,
clear the DAG's queue) and lets ``dag.test()`` run the tasks:

    python -m flywheel_provider.asset_runs flywheel_training
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Any


def pending_event_ids(dag_id: str, session: Any) -> list[int]:
    """Ids of the asset events on the DAG's schedule that no run of the DAG has consumed yet, oldest first."""
    from airflow.models.asset import AssetEvent, DagScheduleAssetReference
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    scheduled = select(DagScheduleAssetReference.asset_id).where(DagScheduleAssetReference.dag_id == dag_id)
    query = (
        select(AssetEvent.id)
        .where(AssetEvent.asset_id.in_(scheduled), ~AssetEvent.created_dagruns.any(DagRun.dag_id == dag_id))
        .order_by(AssetEvent.timestamp.asc(), AssetEvent.id.asc())
    )
    return list(session.scalars(query))


@contextmanager
def _consuming(event_ids: list[int], dag_id: str):
    """While active, the run ``dag.test()`` creates consumes ``event_ids`` and the DAG's queue is cleared."""
    import airflow.models.dagrun as dagrun_module
    from airflow.models.asset import AssetDagRunQueue, AssetEvent
    from sqlalchemy import delete, select

    original = dagrun_module.get_or_create_dagrun

    def create(*args: Any, **kwargs: Any):
        dag_run = original(*args, **kwargs)
        session = kwargs["session"]
        events = session.scalars(select(AssetEvent).where(AssetEvent.id.in_(event_ids))).all()
        dag_run.consumed_asset_events.extend(events)
        session.execute(delete(AssetDagRunQueue).where(AssetDagRunQueue.target_dag_id == dag_id))
        session.commit()
        return dag_run

    dagrun_module.get_or_create_dagrun = create
    try:
        yield
    finally:
        dagrun_module.get_or_create_dagrun = original


def run_asset_triggered(dag: Any, **test_kwargs: Any) -> tuple[Any | None, int]:
    """``dag.test()`` a run that consumed the DAG's pending asset events; ``(None, 0)`` when none are pending."""
    from airflow import settings

    session = settings.Session()
    try:
        event_ids = pending_event_ids(dag.dag_id, session)
    finally:
        session.close()
    if not event_ids:
        return None, 0
    with _consuming(event_ids, dag.dag_id):
        return dag.test(**test_kwargs), len(event_ids)


def main(argv: list[str]) -> int:
    """``python -m flywheel_provider.asset_runs DAG_ID``: exit 0 when the run succeeded or nothing was pending."""
    from airflow.configuration import conf
    from airflow.dag_processing.dagbag import DagBag

    if len(argv) != 1:
        print("usage: python -m flywheel_provider.asset_runs DAG_ID", file=sys.stderr)
        return 2
    bag = DagBag(dag_folder=conf.get("core", "dags_folder"))
    if argv[0] not in bag.dags:
        print(
            f"no DAG {argv[0]!r} in {conf.get('core', 'dags_folder')}; import errors: {bag.import_errors}",
            file=sys.stderr,
        )
        return 2
    dag_run, consumed = run_asset_triggered(bag.dags[argv[0]])
    if dag_run is None:
        print(f"{argv[0]}: no pending asset events, nothing triggered")
        return 0
    print(f"{argv[0]}: run {dag_run.run_id} consumed {consumed} asset event(s): {dag_run.state}")
    return 0 if dag_run.state == "success" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
