"""A batch that fails validation is rejected with a clear message, never reaches training, loses nothing."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.support.install import run_dag

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_rejected_batch_never_reaches_training_and_champion_stays(dagbag, demo_install):
    from pipelines.common.lake import Lake
    from pipelines.demo import generator as produce
    from pipelines.report import summary as report

    settings = demo_install.settings()
    produce.produce(str(demo_install.events), rows=3000, seed=4, batch="good")
    assert run_dag(dagbag, "flywheel_ingest")[0].state == "success"
    assert run_dag(dagbag, "flywheel_training")[0].state == "success"
    champion = report.champion(demo_install.params(), settings)["version"]
    snapshot_rows = json.loads((settings.workspace / "data/snapshot/window.json").read_text())["rows"]

    bad = produce.generate(1000, seed=9, batch="bad")
    bad.loc[bad.index[:300], "amount"] = -50.0  # 30% negative amounts: far beyond validate.mostly
    bad.to_parquet(demo_install.events / "bad.parquet")
    run, states = run_dag(dagbag, "flywheel_ingest")
    assert run.state == "failed" and states["validate"] == "failed" and states["ingest"] == "success"

    lake = Lake(settings.lake_root(demo_install.params()))
    rejected = lake.complete_partitions("rejected")
    assert len(rejected) == 1
    manifest = lake.read_json(f"{rejected[0]}/_manifest.json")
    assert "amount" in json.dumps(manifest["failures"])
    landing = [p for p in lake.complete_partitions("landing") if p.endswith(rejected[0].rsplit("/", 1)[1])]
    assert len(lake.read_frame(f"{landing[0]}/part-00000.parquet")) == 1000  # kept, not lost
    ingest = report.latest(demo_install.params(), settings, "flywheel_ingest")
    assert ingest["validate"]["verdict"] == "fail"
    assert any(
        "expect_column_values_to_be_between(amount)" in f
        for p in ingest["validate"]["partitions"]
        for f in p["failed_expectations"]
    )

    assert run_dag(dagbag, "flywheel_training")[0].state == "success"
    window = json.loads((settings.workspace / "data/snapshot/window.json").read_text())
    assert window["rows"] == snapshot_rows  # the rejected rows never entered the training window
    events = pd.read_parquet(settings.workspace / "data/snapshot/events.parquet")
    assert not events[demo_install.params().schema.key].str.startswith("bad-").any()
    assert report.champion(demo_install.params(), settings)["version"] == champion
