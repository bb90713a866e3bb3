"""Each event enters the validated tier once: copies landed again (at-least-once sources) are dropped."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from pipelines.common.lake import MANIFEST, Lake
from pipelines.common.settings import Settings
from pipelines.validate import stage as validate
from tests.support.data import sensor_frame, sensor_params


def land_parts(lake: Lake, frames: list[pd.DataFrame], run_id: str, source: str = "kafka") -> str:
    partition = lake.partition("landing", run_id, source)
    for i, frame in enumerate(frames):
        lake.write_table(
            f"{partition}/part-{i:05d}.parquet", pa.Table.from_pandas(frame, preserve_index=False)
        )
    lake.write_json(f"{partition}/{MANIFEST}", {"rows": sum(map(len, frames))})
    return partition


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings.from_env(
        {"FLYWHEEL_HOME": str(tmp_path), "FLYWHEEL_PARAMS": str(tmp_path / "params.yaml")}
    )


def validated_keys(lake: Lake) -> pd.Series:
    return pd.concat([lake.read_partition(p) for p in lake.complete_partitions("validated")])["reading_id"]


def test_a_partition_landed_again_after_a_crash_adds_only_its_new_events(settings):
    params = sensor_params()
    lake = Lake(settings.lake_root(params))
    first = sensor_frame(300, seed=1)
    land_parts(lake, [first.iloc[:150], first.iloc[150:]], "run-1")  # two parts: read as one batch
    again = pd.concat(
        [first, sensor_frame(100, seed=2)], ignore_index=True
    )  # the crashed run's records, and more
    land_parts(lake, [again], "run-2")

    summary = validate.run(params, settings)

    assert summary["verdict"] == "pass" and summary["validated_rows"] == 400
    keys = validated_keys(lake)
    assert len(keys) == 400 and keys.is_unique
    second = lake.read_json(f"{lake.path('validated', 'source=kafka', 'run=run-2')}/{MANIFEST}")
    assert (
        second["rows"] == 100 and second["already_validated"] == 300 and second["duplicates_dropped"] == 300
    )


def test_keys_validated_by_an_earlier_run_are_dropped_too(settings):
    params = sensor_params()
    lake = Lake(settings.lake_root(params))
    land_parts(lake, [sensor_frame(200, seed=3)], "run-1", source="files")
    assert validate.run(params, settings)["validated_rows"] == 200
    land_parts(lake, [sensor_frame(200, seed=3)], "run-2")

    summary = validate.run(params, settings)

    assert summary["verdict"] == "pass" and summary["validated_rows"] == 0  # nothing new: every key seen
    assert len(validated_keys(lake)) == 200


def test_the_key_index_answers_membership():
    index = validate.KeyIndex()
    assert not index.seen(pd.Series(["a"])).any()
    index.add(pd.Series(["a", "b"]))
    assert list(index.seen(pd.Series(["b", "c", "a"]))) == [True, False, True]
