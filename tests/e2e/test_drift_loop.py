"""The closed loop through dag.test(): no drift → no retrain; drift → drift_detected → a retrain that
promotes a better model, recording why; drift again inside the cooldown → no second retrain.

``dag.test()`` does not follow asset schedules: the test asserts the ``drift_detected`` event and its
extra, then runs ``flywheel_training`` as the scheduler would for that event
(:func:`flywheel_provider.asset_runs.run_asset_triggered` attaches the pending events to the run).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import yaml

from tests.support.install import ROOT, make_installation, run_dag

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def noon(days_ago: int) -> datetime:
    return DAY - timedelta(days=days_ago) + timedelta(hours=12)


def drift_events() -> list[dict]:
    """Every ``drift_detected`` event in the Airflow DB: its extra and the run that emitted it."""
    from airflow import settings
    from airflow.models.asset import AssetEvent, AssetModel
    from flywheel_provider.assets import DRIFT_DETECTED
    from sqlalchemy import select

    with settings.Session() as session:
        rows = session.scalars(select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                               .where(AssetModel.uri == DRIFT_DETECTED.uri)).all()
        return [{"extra": dict(e.extra or {}), "source_run_id": e.source_run_id} for e in rows]


def produce(install, batch: str, rows: int, seed: int, start: int, end: int, drift: bool = False) -> None:
    """Demo events between ``start`` and ``end`` days ago; drifted: all covariates moved, 30% of the rule."""
    from pipelines.demo import generator as demo

    demo.produce(str(install.events), rows=rows, seed=seed, batch=batch, start=DAY - timedelta(days=start),
                 end=DAY - timedelta(days=end), covariate_drift=1.0 if drift else 0.0,
                 concept_drift=0.3 if drift else 0.0)


def ingest(dagbag) -> None:
    run, states = run_dag(dagbag, "flywheel_ingest")
    assert run.state == "success", states


@pytest.fixture
def loop_install(tmp_path, monkeypatch):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"].update(epochs=8, patience=3, batch_size=256)
    params["drift"].update(window_days=1, min_rows=500, cooldown_hours=24,
                           min_roc_auc=0.6)  # a model from 2800 rows: judge this loop on data drift
    params["promote"].update(min_roc_auc=0.65)
    return make_installation(tmp_path, monkeypatch, params)


def test_drift_triggers_one_retrain_that_promotes_a_better_model(dagbag, loop_install):
    from flywheel_provider.asset_runs import run_asset_triggered
    from mlflow import MlflowClient

    from pipelines.report import summary as report

    install, settings = loop_install, loop_install.settings()
    name = install.params().promote.model_name
    client = MlflowClient(settings.tracking_uri)
    produce(install, "clean", rows=4000, seed=3, start=12, end=3)
    ingest(dagbag)
    run, states = run_dag(dagbag, "flywheel_training", logical_date=noon(3))
    assert run.state == "success", states
    first = report.latest(settings, "flywheel_training")["promotion"]
    assert first["promoted"] is True

    # the same distribution a day later: no drift, no event, no retrain
    produce(install, "clean-later", rows=1500, seed=4, start=3, end=2)
    ingest(dagbag)
    before = len(drift_events())
    run, states = run_dag(dagbag, "flywheel_drift", logical_date=noon(3))
    assert run.state == "success" and states == {"check": "success", "trigger_retrain": "skipped"}, states
    calm = report.latest(settings, "flywheel_drift")
    assert calm["rows_current"] == 1500 and calm["verdict"]["retrain"] is False, calm["verdict"]
    assert calm["drift_share"] < 0.5 and "amount" not in calm["drifted_columns"]
    assert len(drift_events()) == before

    # covariate and concept drift: drift_detected with the evidence in its extra
    produce(install, "drifted", rows=10_000, seed=5, start=2, end=1, drift=True)
    ingest(dagbag)
    run, states = run_dag(dagbag, "flywheel_drift", logical_date=noon(2))
    assert states == {"check": "success", "trigger_retrain": "success"}, states
    detected = report.latest(settings, "flywheel_drift")
    assert detected["verdict"]["retrain"] is True and detected["champion"] == f"models:/{name}/{first['version']}"
    assert "amount" in detected["drifted_columns"] and detected["roc_auc"] is not None
    html = detected["report"]["html"]
    assert html.endswith(f"reports/drift/run={run.run_id.replace(':', '_').replace('+', '_')}/report.html")
    with open(html) as fh:
        assert "Drifted Columns" in fh.read()  # Evidently's data drift panel
    events = drift_events()
    assert len(events) == before + 1 and events[-1]["source_run_id"] == run.run_id
    extra = events[-1]["extra"]
    assert extra["report"] == html and extra["drift_share"] == detected["drift_share"]
    assert extra["drifted_columns"] == detected["drifted_columns"]
    monitoring = client.get_experiment_by_name(install.params().drift.experiment)
    logged = client.get_run(detected["mlflow_run_id"])
    assert logged.info.experiment_id == monitoring.experiment_id
    assert logged.data.tags["flywheel.drift.verdict"] == "retrain"

    # the retrain that drift_detected triggers: a new champion, better on the drifted rows, and why it ran
    training, consumed = run_asset_triggered(dagbag.dags["flywheel_training"], logical_date=noon(2))
    assert consumed == 1 and training.state == "success"
    retrain = report.latest(settings, "flywheel_training")
    promotion = retrain["promotion"]
    assert retrain["trigger"] == "drift" and retrain["trigger_reason"]["details"]["report"] == html
    assert promotion["promoted"] is True and promotion["previous_champion"] == first["version"]
    assert promotion["candidate"]["pr_auc"] > promotion["champion_scores"]["pr_auc"]
    version = client.get_model_version(name, promotion["version"])
    assert version.tags["flywheel.trigger"] == "drift"
    assert version.tags["flywheel.trigger.report"] == html
    assert "critical column amount" in version.tags["flywheel.trigger.reason"]
    assert client.get_run(promotion["mlflow_run_id"]).data.tags["flywheel.trigger.report"] == html

    # drift again within the cooldown: detected, reported, but no second retrain
    produce(install, "drifted-more", rows=1500, seed=6, start=1, end=0, drift=True)
    ingest(dagbag)
    run, states = run_dag(dagbag, "flywheel_drift", logical_date=noon(1))
    assert states == {"check": "success", "trigger_retrain": "skipped"}, states
    cooled = report.latest(settings, "flywheel_drift")
    assert cooled["champion"] == f"models:/{name}/{promotion['version']}"
    assert cooled["verdict"]["drift_detected"] is True and cooled["verdict"]["retrain"] is False
    assert "cooldown" in cooled["verdict"]["reasons"][-1]
    assert len(drift_events()) == before + 1
    assert run_asset_triggered(dagbag.dags["flywheel_training"])[0] is None
