"""flywheel_scoring listens to validated_events, emits no asset, and every task has a time limit."""

from __future__ import annotations


def test_scoring_dag_runs_on_validated_events_and_emits_nothing(dagbag):
    from airflow.sdk import Asset
    from flywheel_provider.assets import VALIDATED_EVENTS

    dag = dagbag.dags["flywheel_scoring"]
    assets = dag.timetable.asset_condition
    assert isinstance(assets, Asset) and assets.uri == VALIDATED_EVENTS.uri
    assert "scoring" in dag.tags and dag.max_active_runs == 1
    assert all(not t.outlets for t in dag.tasks)
    assert all(t.execution_timeout is not None for t in dag.tasks)
