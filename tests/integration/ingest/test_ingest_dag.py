"""flywheel_ingest reads Kafka when the run's ``sources`` param says so (what ``make run`` does), with the
broker from the ``flywheel_kafka`` Connection, and publishes ``validated_events`` with the counts."""

from __future__ import annotations

import pytest

from tests.support.install import run_dag
from tests.support.sources import SESSION_TIMEOUT_MS, make_source_install, unique_topic

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def validated_events() -> list[dict]:
    from airflow import settings
    from airflow.models.asset import AssetEvent, AssetModel
    from flywheel_provider.assets import VALIDATED_EVENTS
    from sqlalchemy import select

    with settings.Session() as session:
        rows = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri == VALIDATED_EVENTS.uri)
        ).all()
        return [{"extra": dict(e.extra or {}), "source_run_id": e.source_run_id} for e in rows]


def mlflow_artifacts(install, run_id: str, folder: str) -> set[str]:
    """The file names under ``folder`` in the MLflow run's artifacts (the UI's "GX Data Docs" link)."""
    from pipelines.common import tracking

    client = tracking.client(install.settings())
    return {f.path.rsplit("/", 1)[-1] for f in client.list_artifacts(run_id, folder)}


def test_the_ingest_dag_drains_kafka_and_publishes_the_counts(
    dagbag, kafka_broker, tmp_path, request, monkeypatch
):
    from pipelines.demo import publish
    from pipelines.report import summary as report

    topic = unique_topic(request)
    sent = publish.to_kafka(topic, kafka_broker.endpoint(), rows=3000, seed=51, malformed_fraction=0.01)
    install = make_source_install(
        tmp_path,
        kafka={"topics": [topic], "group_id": f"g-{topic}", "session_timeout_ms": SESSION_TIMEOUT_MS},
    )
    assert install.params().ingest.sources == ("files",)  # the run's param decides, not params.yaml
    for key, value in install.env().items():
        if key.startswith("FLYWHEEL_"):
            monkeypatch.setenv(key, value)
    host, port = kafka_broker.bootstrap.split(":")
    monkeypatch.setenv(
        "AIRFLOW_CONN_FLYWHEEL_KAFKA", f'{{"conn_type": "generic", "host": "{host}", "port": {port}}}'
    )
    monkeypatch.delenv("FLYWHEEL_KAFKA_BOOTSTRAP", raising=False)
    # The tasks track to this installation's MLflow, whatever an earlier test left in the environment.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", install.settings().tracking_uri)
    monkeypatch.delenv("AIRFLOW_CONN_FLYWHEEL_MLFLOW", raising=False)
    before = len(validated_events())

    run, states = run_dag(dagbag, "flywheel_ingest", run_conf={"sources": ["kafka"]})

    assert run.state == "success", states
    landed = report.latest(install.params(), install.settings(), "flywheel_ingest")["ingest"]
    assert landed["sources"] == ["kafka"] and landed["consumed"] == 3000
    assert landed["quarantined"] == sent["malformed"] and landed["landed"] == 3000 - sent["malformed"]
    events = validated_events()
    assert len(events) == before + 1
    assert events[-1]["extra"] == {
        "landed": landed["landed"],
        "quarantined": sent["malformed"],
        "validated_rows": landed["landed"],
        "verdict": "pass",
    }
    validated = report.latest(install.params(), install.settings(), "flywheel_ingest")["validate"]
    docs = mlflow_artifacts(install, validated["mlflow_run_id"], validated["docs_artifact"].rsplit("/", 1)[0])
    assert validated["docs_artifact"].endswith("/index.html") and "index.html" in docs

    publish.to_kafka(topic, kafka_broker.endpoint(), rows=3000, seed=51, malformed_fraction=0.01)  # again
    run, states = run_dag(dagbag, "flywheel_ingest", run_conf={"sources": ["kafka"]})
    assert run.state == "success" and states["ingest"] == "success" and states["validate"] == "skipped"
    assert len(validated_events()) == before + 1  # copies of validated events: no new asset event
