"""The whole loop through Airflow's dag.test(): files → landing → gate → DVC stages → MLflow → champion."""

from __future__ import annotations

import json

import pytest

from tests.support.install import run_dag

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def champion_version(install):
    from pipelines.report import summary as report

    champ = report.champion(install.params(), install.settings())
    return champ and champ["version"]


def test_loop_ends_with_a_champion_and_a_rerun_skips_training(dagbag, demo_install):
    from pipelines.demo import generator as produce
    from pipelines.report import summary as report

    produce.produce(str(demo_install.events), rows=4000, seed=3, malformed_fraction=0.01)

    run, states = run_dag(dagbag, "flywheel_ingest")
    assert run.state == "success", states
    ingest = report.latest(demo_install.params(), demo_install.settings(), "flywheel_ingest")
    landed = ingest["ingest"]
    assert landed["consumed"] == landed["landed"] + landed["quarantined"] > 0
    assert landed["quarantined"] > 0  # the malformed 1% went to quarantine, with reasons
    assert ingest["validate"]["verdict"] == "pass"

    run, states = run_dag(dagbag, "flywheel_training")
    assert run.state == "success", states
    first = report.latest(demo_install.params(), demo_install.settings(), "flywheel_training")
    assert first["stages"] == {"snapshot": "ran", "featurize": "ran", "train": "ran", "evaluate": "ran"}
    assert first["promotion"]["promoted"] is True
    assert champion_version(demo_install) == first["promotion"]["version"]

    run, states = run_dag(dagbag, "flywheel_training")
    assert run.state == "success", states
    second = report.latest(demo_install.params(), demo_install.settings(), "flywheel_training")
    assert second["stages"]["featurize"] == "skipped" and second["stages"]["train"] == "skipped"
    assert second["promotion"]["promoted"] is False
    assert champion_version(demo_install) == first["promotion"]["version"]
    lock = (demo_install.settings().workspace / "dvc.lock").read_text()
    assert "data/features" in lock and "models/model" in lock


def test_forced_promotion_needs_a_reason_and_is_recorded(dagbag, demo_install):
    from mlflow import MlflowClient

    from pipelines.demo import generator as produce
    from pipelines.report import summary as report

    produce.produce(str(demo_install.events), rows=3000, seed=5)
    assert run_dag(dagbag, "flywheel_ingest")[0].state == "success"

    run, states = run_dag(dagbag, "flywheel_training", run_conf={"force_promote": True})
    assert run.state == "failed" and states["prepare"] == "failed"  # refused before any work
    assert report.latest(demo_install.params(), demo_install.settings(), "flywheel_training") is None

    run, states = run_dag(
        dagbag,
        "flywheel_training",
        run_conf={"force_promote": True, "force_reason": "relabelled fraud cases", "epochs": 2},
    )
    assert run.state == "success", states
    record = report.latest(demo_install.params(), demo_install.settings(), "flywheel_training")
    assert record["promotion"]["forced"] is True
    client = MlflowClient(demo_install.settings().tracking_uri)
    version = client.get_model_version(install_name(demo_install), record["promotion"]["version"])
    assert version.tags["flywheel.gate.reason"] == "forced: relabelled fraud cases"
    assert json.loads(version.tags["flywheel.gate.candidate"])["roc_auc"] > 0


def install_name(install) -> str:
    return install.params().promote.model_name
