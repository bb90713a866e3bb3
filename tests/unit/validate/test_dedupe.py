"""Each event enters the validated tier once: copies landed again (at-least-once sources) are dropped."""

from __future__ import annotations

import pandas as pd

from pipelines.common.lake import MANIFEST, Lake
from pipelines.validate import stage as validate
from tests.support.data import sensor_frame, sensor_params, write_partition


def validated_keys(lake: Lake) -> pd.Series:
    return pd.concat([lake.read_partition(p) for p in lake.complete_partitions("validated")])["reading_id"]


def test_a_partition_landed_again_after_a_crash_adds_only_its_new_events(tmp_settings):
    params = sensor_params()
    lake = Lake(tmp_settings.lake_root(params))
    first = sensor_frame(300, seed=1)
    # two parts, read as one batch; then the crashed run's records again, and more
    write_partition(lake, "landing", [first.iloc[:150], first.iloc[150:]], "run-1", "kafka")
    again = pd.concat([first, sensor_frame(100, seed=2)], ignore_index=True)
    write_partition(lake, "landing", again, "run-2", "kafka")

    summary = validate.run(params, tmp_settings)

    assert summary["verdict"] == "pass" and summary["validated_rows"] == 400
    keys = validated_keys(lake)
    assert len(keys) == 400 and keys.is_unique
    second = lake.read_json(f"{lake.path('validated', 'source=kafka', 'run=run-2')}/{MANIFEST}")
    assert (
        second["rows"] == 100 and second["already_validated"] == 300 and second["duplicates_dropped"] == 300
    )


def test_keys_validated_by_an_earlier_run_are_dropped_too(tmp_settings):
    params = sensor_params()
    lake = Lake(tmp_settings.lake_root(params))
    write_partition(lake, "landing", sensor_frame(200, seed=3), "run-1", "files")
    assert validate.run(params, tmp_settings)["validated_rows"] == 200
    write_partition(lake, "landing", sensor_frame(200, seed=3), "run-2", "kafka")

    summary = validate.run(params, tmp_settings)

    assert summary["verdict"] == "pass" and summary["validated_rows"] == 0  # nothing new: every key seen
    assert len(validated_keys(lake)) == 200


def test_the_key_index_answers_membership():
    index = validate.KeyIndex()
    assert not index.seen(pd.Series(["a"])).any()
    index.add(pd.Series(["a", "b"]))
    assert list(index.seen(pd.Series(["b", "c", "a"]))) == [True, False, True]
