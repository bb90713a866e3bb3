"""A cleared ingest date re-runs to the same partition: the files it read, nothing that arrived since."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from pipelines.common.config import load_params
from pipelines.common.lake import Lake
from pipelines.common.settings import Settings
from pipelines.demo import generator as produce
from pipelines.ingest import files as ingest
from tests.support.install import ROOT

PARAMS = load_params(ROOT / "params.yaml")


def landed_bytes(settings: Settings, summary: dict) -> bytes:
    return (Path(summary["landing_partition"]) / ingest.LANDING_FILE).read_bytes()


def test_rerun_of_a_completed_run_reads_exactly_its_files(tmp_path):
    settings = Settings.from_env({"FLYWHEEL_HOME": str(tmp_path / "home")})
    events = tmp_path / "events"
    produce.produce(str(events), rows=200, seed=1, batch="first", malformed_fraction=0.05)
    day1 = "scheduled__2026-11-01T00:00:00+00:00"
    first = ingest.run(PARAMS, settings, day1, path=str(events))
    first_bytes = landed_bytes(settings, first)

    produce.produce(str(events), rows=50, seed=2, batch="later")  # arrives after day 1 ran
    again = ingest.run(PARAMS, settings, day1, path=str(events))  # the date is cleared and re-run
    assert (again["files_new"], again["files_skipped"]) == (1, 1)
    assert again["landing_partition"] == first["landing_partition"]
    assert (again["consumed"], again["landed"], again["quarantined"]) == (
        first["consumed"],
        first["landed"],
        first["quarantined"],
    )
    assert landed_bytes(settings, again) == first_bytes  # same rows, same bytes, no duplicates

    day2 = ingest.run(PARAMS, settings, "scheduled__2026-11-02T00:00:00+00:00", path=str(events))
    assert (day2["files_new"], day2["landed"]) == (1, 50)  # the newer file goes to the next run
    keys = [
        pq.read_table(Path(s["landing_partition"]) / ingest.LANDING_FILE)
        .column(PARAMS.schema.key)
        .to_pylist()
        for s in (again, day2)
    ]
    assert not set(keys[0]) & set(keys[1])
    lake = Lake(settings.lake_root(PARAMS))
    assert len(lake.complete_partitions("landing")) == 2
