"""The closed loop on the real scheduler, driven as ``make run`` drives it (pipelines.demo.airflow_runner).

Airflow's own scheduler, DAG processor and API server run on a private ``AIRFLOW_HOME``. The test triggers
``flywheel_ingest`` (and the first training) through the REST API; the scheduler does the rest. The first
ingest's asset-triggered drift check skips (no champion yet); the first trigger of ``flywheel_training``
(paused until then) trains the first model; calm data → no ``drift_detected``; drifted data → an
asset-triggered ``flywheel_drift`` run emits ``drift_detected`` with the evidence, and the scheduler
starts the asset-triggered ``flywheel_training`` run that consumes it and records why; the evaluation
gate's decision (a block bootstrap on the newest, drifted rows) is recorded and followed by the
``champion`` alias; more drifted data → no second retrain (no drift against a promoted retrain, the
cooldown against a champion that stayed).

As in ``make run``, ``flywheel_ingest`` and ``flywheel_training`` stay paused until their first trigger,
which takes their due cron slot. The ingest and drift schedules are once a year in this installation's
params, so no cron run lands between the test's steps (the drift slot of January 1st runs once, when
unpaused, with no champion).
"""

from __future__ import annotations

import io
import os
import re
from contextlib import redirect_stdout
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipelines.demo import airflow_runner as runner
from tests.support.install import ROOT, demo_params, make_installation
from tests.support.live_airflow import prepare_airflow

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DRIFT_DETECTED = "flywheel://drift_detected"  # the asset's name (Airflow stores its URI with a trailing /)
TIMEOUT_S = 900


def produce(install, batch: str, rows: int, seed: int, start: datetime, end: datetime, drift: bool = False):
    """Demo events in [start, end); drifted: every covariate moved, 30% of the fraud rule changed."""
    from pipelines.demo import generator as demo

    demo.produce(
        str(install.events),
        rows=rows,
        seed=seed,
        batch=batch,
        start=start,
        end=end,
        covariate_drift=1.0 if drift else 0.0,
        concept_drift=0.3 if drift else 0.0,
    )


def drift_events(api: runner.AirflowApi) -> list[dict]:
    """Every ``drift_detected`` event Airflow recorded, oldest first."""
    body = api.call("GET", "/assets/events", source_dag_id="flywheel_drift", order_by="timestamp", limit=100)
    return [e for e in body["asset_events"] if e["name"] == DRIFT_DETECTED]


def ingest_then(api: runner.AirflowApi, *downstream: str) -> list[runner.RunStatus]:
    """Trigger ``flywheel_ingest``; follow it, then the asset-triggered runs of ``downstream``."""
    return runner.trigger_and_follow(api, "flywheel_ingest", then=downstream, timeout_s=TIMEOUT_S)


def summary() -> str:
    """What ``flywheel summary`` prints."""
    from pipelines import cli

    out = io.StringIO()
    with redirect_stdout(out):
        assert cli.main(["summary"]) == 0
    return out.getvalue()


@pytest.fixture
def loop_install(tmp_path, monkeypatch):
    params = demo_params(epochs=8, patience=3, batch_size=256)
    params["drift"].update(
        window_days=1, min_rows=500, cooldown_hours=24, min_roc_auc=0.6
    )  # a model from 2800 rows: judge this loop on data drift
    params["promote"].update(min_roc_auc=0.65)
    params["schedules"] = {**params.get("schedules", {}), "ingest": "0 0 1 1 *", "drift": "0 0 1 1 *"}
    return make_installation(tmp_path, monkeypatch, params)


@pytest.fixture
def scheduler(loop_install, tmp_path):
    """The embedded Airflow of ``make run`` for this installation: migrated, started, stopped by PID."""
    home = tmp_path / "airflow"
    prepare_airflow({**os.environ, "AIRFLOW_HOME": str(home)}, home)
    path = os.pathsep.join(str(p) for p in (ROOT / "plugins", ROOT / "dags", ROOT))
    env = {"PYTHONPATH": path, "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO"}  # INFO: the API's access log
    with runner.running(home, ("flywheel_drift",), env=env, timeout_s=TIMEOUT_S) as api:
        yield api


def execution_api_requests(airflow_home: Path) -> list[str]:
    """``METHOD path`` of each request the API server answered on its task execution API, in order."""
    log = airflow_home / "processes" / "logs" / "api-server.log"
    found = (re.search(r"method=(\S+) path=(/execution/\S*)", line) for line in log.read_text().splitlines())
    return [f"{match[1]} {match[2]}" for match in found if match]


def test_drift_triggers_one_asset_triggered_retrain_that_records_why_and_the_gate_decision(
    loop_install, scheduler, tmp_path
):
    from mlflow import MlflowClient

    from pipelines.report import summary as report

    api, install, settings = scheduler, loop_install, loop_install.settings()
    # the runner built the task execution API (its first request) before any DAG was unpaused
    assert execution_api_requests(tmp_path / "airflow")[0] == "GET /execution/health"
    name = install.params().promote.model_name
    client = MlflowClient(settings.tracking_uri)
    now = datetime.now(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    calm_until = today + (now - today) / 5  # today's calm events, then the drifted ones: the newest rows

    # the first data: the drift check the scheduler starts skips, as there is no champion yet
    produce(install, "clean", rows=4000, seed=3, start=today - timedelta(days=12), end=today)
    ingest, drift = ingest_then(api, "flywheel_drift")
    assert drift.run_type == "asset_triggered" and drift.tasks == {
        "check": "skipped",
        "trigger_retrain": "skipped",
    }
    assert drift_events(api) == []

    # flywheel_training was paused until now: its first trigger takes the due nightly slot, which unpausing
    # would otherwise start at once, and trains the first model; the slot does not run a second time
    (first_run,) = runner.trigger_and_follow(api, "flywheel_training", timeout_s=TIMEOUT_S)
    first = report.latest(install.params(), settings, "flywheel_training")
    assert first_run.run_type == "manual" and first["trigger"] == "manual"
    assert first["promotion"]["promoted"] is True
    assert runner.find_runs(api, "flywheel_training", run_type="scheduled") == []
    first_version = first["promotion"]["version"]

    # the same distribution today: no drift, no event, no retrain
    produce(install, "calm", rows=1500, seed=4, start=today, end=calm_until)
    _, calm_run = ingest_then(api, "flywheel_drift")
    assert calm_run.tasks == {"check": "success", "trigger_retrain": "skipped"}
    calm = report.latest(install.params(), settings, "flywheel_drift")
    assert calm["rows_current"] == 1500 and calm["verdict"]["retrain"] is False, calm["verdict"]
    assert drift_events(api) == []

    # covariate and concept drift: drift_detected with the evidence, and the retrain the scheduler starts
    produce(install, "drifted", rows=10_000, seed=5, start=calm_until, end=now, drift=True)
    ingest, drift_run, retrain_run = ingest_then(api, "flywheel_drift", "flywheel_training")
    assert drift_run.tasks == {"check": "success", "trigger_retrain": "success"}
    detected = report.latest(install.params(), settings, "flywheel_drift")
    assert (
        detected["verdict"]["retrain"] is True and detected["champion"] == f"models:/{name}/{first_version}"
    )
    assert "amount" in detected["drifted_columns"] and detected["roc_auc"] is not None
    html = detected["report"]["html"]
    assert html.endswith(
        f"reports/drift/run={drift_run.run_id.replace(':', '_').replace('+', '_')}/report.html"
    )
    assert "Drifted Columns" in Path(html).read_text()  # Evidently's data drift panel
    (event,) = drift_events(api)
    assert event["source_run_id"] == drift_run.run_id
    assert event["extra"]["report"] == html and event["extra"]["drift_share"] == detected["drift_share"]
    assert event["extra"]["drifted_columns"] == detected["drifted_columns"]
    logged = client.get_run(detected["mlflow_run_id"])
    assert (
        logged.info.experiment_id
        == client.get_experiment_by_name(install.params().drift.experiment).experiment_id
    )
    assert logged.data.tags["flywheel.drift.verdict"] == "retrain"

    # the retrain: asset-triggered by that event, recorded as a drift retrain, and the gate's decision
    consumed = api.call(
        "GET", runner.run_path("flywheel_training", retrain_run.run_id) + "/upstreamAssetEvents"
    )
    assert retrain_run.run_type == "asset_triggered"
    assert [e["id"] for e in consumed["asset_events"]] == [event["id"]]
    retrain = report.latest(install.params(), settings, "flywheel_training")
    promotion = retrain["promotion"]
    assert retrain["trigger"] == "drift" and retrain["trigger_reason"]["details"]["report"] == html
    assert promotion["previous_champion"] == first_version and promotion["test_rows"] > 0
    assert promotion["candidate"]["pr_auc"] is not None and promotion["champion_scores"]["pr_auc"] is not None
    champion = promotion["version"] if promotion["promoted"] else first_version  # the block bootstrap decides
    assert str(client.get_model_version_by_alias(name, "champion").version) == str(champion)
    version = client.get_model_version(name, promotion["version"])
    assert version.tags["flywheel.trigger"] == "drift" and version.tags["flywheel.trigger.report"] == html
    assert "critical column amount" in version.tags["flywheel.trigger.reason"]
    assert client.get_run(promotion["mlflow_run_id"]).data.tags["flywheel.trigger.report"] == html
    text = summary()
    assert f"Training:   run {retrain_run.run_id} (trigger: drift)" in text
    assert f"Drift:      run {drift_run.run_id}:" in text and "verdict: retrain" in text
    assert (
        f"Gate:       {'promoted' if promotion['promoted'] else 'not promoted'}: {promotion['reason']}"
        in text
    )
    assert f"Champion:   {name} v{champion}" in text

    # more drifted data: checked, but no event, so no second retrain. A promoted retrain's reference holds
    # the drifted rows (no drift); a champion that stayed sees the drift, and the cooldown holds it back
    produce(install, "drifted-more", rows=1500, seed=6, start=now, end=datetime.now(UTC), drift=True)
    _, cooled_run = ingest_then(api, "flywheel_drift")
    assert cooled_run.tasks == {"check": "success", "trigger_retrain": "skipped"}
    cooled = report.latest(install.params(), settings, "flywheel_drift")
    assert cooled["champion"] == f"models:/{name}/{champion}" and cooled["verdict"]["retrain"] is False
    assert cooled["verdict"]["drift_detected"] is not promotion["promoted"]
    assert ("cooldown" in cooled["verdict"]["reasons"][-1]) is cooled["verdict"]["drift_detected"]
    assert len(drift_events(api)) == 1
    assert [r.run_id for r in runner.find_runs(api, "flywheel_training", run_type="asset_triggered")] == [
        retrain_run.run_id
    ]
