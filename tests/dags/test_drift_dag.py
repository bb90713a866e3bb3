"""flywheel_drift listens to validated_events (with a time fallback); it alone produces drift_detected."""

from __future__ import annotations


def scheduled_uris(dag) -> set[str]:
    condition = dag.timetable.asset_condition
    if hasattr(condition, "iter_assets"):
        return {asset.uri for asset in condition.iter_assets().values()}
    return {condition.uri}


def test_drift_dag_runs_on_validated_events_or_its_schedule(dagbag):
    from airflow.sdk import AssetOrTimeSchedule
    from flywheel_provider.assets import VALIDATED_EVENTS

    dag = dagbag.dags["flywheel_drift"]
    assert isinstance(dag.timetable, AssetOrTimeSchedule)
    assert scheduled_uris(dag) == {VALIDATED_EVENTS.uri}
    assert "monitoring" in dag.tags


def test_only_trigger_retrain_emits_drift_detected_and_training_listens(dagbag):
    from flywheel_provider.assets import DRIFT_DETECTED

    emitters = {
        (dag_id, t.task_id)
        for dag_id, dag in dagbag.dags.items()
        for t in dag.tasks
        if DRIFT_DETECTED.uri in {getattr(o, "uri", None) for o in t.outlets}
    }
    assert emitters == {("flywheel_drift", "trigger_retrain")}
    training = dagbag.dags["flywheel_training"]
    assert scheduled_uris(training) == {DRIFT_DETECTED.uri}
