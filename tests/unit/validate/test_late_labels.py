"""Late labels from a later event with the same key: validation lands the label a repeated key carries when
it is news, in the labels tier, once, even across a crash before the validated manifest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.common.lake import MANIFEST, Lake
from pipelines.scoring import read_labels
from pipelines.validate import stage as validate
from tests.support.data import SENSOR, VALIDATE, sensor_frame, sensor_params, write_partition

SCHEMA = sensor_params().schema


class Killed(BaseException):
    """The process dying at a chosen write (nothing catches it on the way out)."""


def batch(*rows: tuple[str, int]) -> pd.DataFrame:
    return pd.DataFrame({"reading_id": [k for k, _ in rows], "alarm": np.array([v for _, v in rows], "int8")})


def index(validated: dict[str, int] | None = None, late: dict[str, int] | None = None) -> validate.KeyIndex:
    """A key index that tracks labels: ``validated`` keys with their labels, then ``late`` labels landed."""
    known = validate.KeyIndex(labels=[])
    if validated:
        known.add(pd.Series(list(validated)), pd.Series(list(validated.values())))
    if late:
        known.add_late(pd.Series(list(late)), pd.Series(list(late.values())))
    return known


def pairs(frame: pd.DataFrame) -> list[tuple[str, int]]:
    return list(zip(frame["reading_id"], frame["alarm"].astype(int), strict=True))


@pytest.mark.parametrize(
    ("rows", "known", "validated", "late"),
    [
        # each key once, none seen: everything validated, no label
        ([("a", 0), ("b", 1)], index(), ["a", "b"], []),
        # a copy with the same label (a redelivery) tells nothing
        ([("a", 0), ("a", 0)], index(), ["a"], []),
        # a later copy with another label: the first copy is validated, the last copy's label is late
        ([("a", 0), ("b", 0), ("a", 1)], index(), ["a", "b"], [("a", 1)]),
        # the last copy wins: back to the validated label is no news; a third label is the last one
        ([("a", 0), ("a", 1), ("a", 0)], index(), ["a"], []),
        ([("a", 0), ("a", 1), ("a", 1)], index(), ["a"], [("a", 1)]),
        # keys validated by an earlier partition: compared with their validated label
        ([("a", 0), ("b", 1), ("c", 0)], index({"a": 0, "b": 0}), ["c"], [("b", 1)]),
        # ... or with the late label landed since, which they may turn back
        ([("a", 0), ("b", 1)], index({"a": 0, "b": 0}, late={"a": 1, "b": 1}), [], [("a", 0)]),
        # a label landed before the event itself was validated: the event's label is newer
        ([("a", 0)], index(late={"a": 1}), ["a"], [("a", 0)]),
    ],
)
def test_a_repeated_key_gives_a_late_label_only_when_its_label_is_news(rows, known, validated, late):
    split = validate.split_batch(batch(*rows), SCHEMA, known)
    assert list(split.validated["reading_id"]) == validated
    assert pairs(split.late_labels) == late
    assert list(split.late_labels.columns) == ["reading_id", "alarm"]


def test_labels_are_not_kept_when_asked_not_to():
    split = validate.split_batch(
        batch(("a", 0), ("a", 1), ("b", 1)), SCHEMA, index({"b": 0}), keep_labels=False
    )
    assert list(split.validated["reading_id"]) == ["a"] and split.late_labels.empty
    assert split.already_validated == 1


def test_the_key_index_knows_the_latest_label():
    known = index({"a": 0, "b": 1}, late={"b": 0, "z": 1})
    known.add_late(pd.Series(["b"]), pd.Series([1]))
    labels = known.labels_of(pd.Series(["a", "b", "c", "z"]))
    assert labels[:2].tolist() == [0.0, 1.0] and np.isnan(labels[2]) and labels[3] == 1.0
    untracked = validate.KeyIndex()
    untracked.add(pd.Series(["a"]))
    assert np.isnan(untracked.labels_of(pd.Series(["a"]))).all()


# -- through the stage: a real lake on local disk, the real GX suite ---------------------------------


def later_batch(first: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """New readings, 20 of ``first`` sent again with the alarm flipped, 10 sent again unchanged, and one
    new reading sent twice with its alarm changed; the late labels expected, by key."""
    fresh = sensor_frame(300, seed=2)
    flipped = first.iloc[:20].assign(alarm=lambda f: (1 - f["alarm"]).astype("int8"))
    unchanged = first.iloc[20:30]
    twice = fresh.iloc[[5]].assign(alarm=lambda f: (1 - f["alarm"]).astype("int8"))
    frame = pd.concat([fresh, flipped, unchanged, twice], ignore_index=True)
    expected = dict(pairs(flipped)) | dict(pairs(twice))
    return frame, expected


def landed_labels(lake: Lake) -> dict[str, int]:
    frame = read_labels(lake, SCHEMA)
    return {} if frame is None else dict(pairs(frame))


def test_a_later_batch_lands_the_labels_its_repeated_keys_carry(tmp_settings):
    params = sensor_params()
    lake = Lake(tmp_settings.lake_root(params))
    first = sensor_frame(300, seed=1)
    write_partition(lake, "landing", first, "run-1")
    assert validate.run(params, tmp_settings)["late_labels"] == 0
    frame, expected = later_batch(first)
    landing = write_partition(lake, "landing", frame, "run-2")

    summary = validate.run(params, tmp_settings)

    assert summary["verdict"] == "pass" and summary["late_labels"] == len(expected) == 21
    labels = lake.path("labels", "source=files", "run=run-2")
    assert lake.complete_partitions("labels") == [labels]
    assert lake.read_json(f"{labels}/{MANIFEST}")["origin"] == landing
    assert landed_labels(lake) == expected
    manifest = lake.read_json(f"{lake.path('validated', 'source=files', 'run=run-2')}/{MANIFEST}")
    assert manifest["late_labels"] == 21 and manifest["labels_partition"] == labels
    assert (
        manifest["rows"] == 300
        and manifest["already_validated"] == 30
        and manifest["duplicates_dropped"] == 31
    )
    validated = pd.concat(lake.read_partition(p) for p in lake.complete_partitions("validated"))
    assert validated["reading_id"].is_unique and len(validated) == 600
    # the validated tier keeps the label each event had when it was first validated
    original = dict(pairs(first)) | dict(pairs(sensor_frame(300, seed=2)))
    kept = validated.set_index("reading_id").loc[list(expected), "alarm"].astype(int)
    assert kept.to_dict() == {k: original[k] for k in expected} != expected

    # the same events once more (an at-least-once redelivery): their labels are known now, nothing lands
    write_partition(lake, "landing", frame, "run-3")
    assert validate.run(params, tmp_settings)["late_labels"] == 0
    assert lake.complete_partitions("labels") == [labels]


def test_a_crash_before_the_validated_manifest_lands_each_label_once(tmp_settings, monkeypatch):
    params = sensor_params()
    lake = Lake(tmp_settings.lake_root(params))
    first = sensor_frame(300, seed=1)
    write_partition(lake, "landing", first, "run-1")
    validate.run(params, tmp_settings)
    frame, expected = later_batch(first)
    write_partition(lake, "landing", frame, "run-2")
    validated = lake.path("validated", "source=files", "run=run-2")
    write_json = Lake.write_json

    def crash_at_the_commit(self, path, obj):
        if path == f"{validated}/{MANIFEST}":
            raise Killed(path)
        write_json(self, path, obj)

    monkeypatch.setattr(Lake, "write_json", crash_at_the_commit)
    with pytest.raises(Killed):
        validate.run(params, tmp_settings)
    monkeypatch.setattr(Lake, "write_json", write_json)
    assert landed_labels(lake) == expected  # the labels partition was complete, the batch was not
    assert validated not in lake.complete_partitions("validated")

    summary = validate.run(params, tmp_settings)

    assert summary["late_labels"] == 21  # the crashed attempt's labels are not taken as known ones
    assert lake.complete_partitions("labels") == [lake.path("labels", "source=files", "run=run-2")]
    rows = lake.read_partition(lake.complete_partitions("labels")[0])
    assert len(rows) == 21 and rows["reading_id"].is_unique
    assert landed_labels(lake) == expected


def test_other_tasks_keep_no_late_labels(tmp_settings):
    from pipelines.common.config import parse_params

    params = parse_params(
        {
            "schema": {**SENSOR, "task": "regression"},
            "validate": VALIDATE,
            "promote": {"metric": "rmse"},
            "drift": {"performance_metric": "rmse"},
            "storage": {"root": None},
        }
    )
    lake = Lake(tmp_settings.lake_root(params))
    first = sensor_frame(300, seed=1).assign(alarm=lambda f: f["temperature"] / 10)
    write_partition(lake, "landing", first, "run-1")
    write_partition(lake, "landing", first.iloc[:100].assign(alarm=1.5), "run-2")

    summary = validate.run(params, tmp_settings)

    assert summary["verdict"] == "pass" and summary["late_labels"] == 0
    assert lake.complete_partitions("labels") == []
    manifest = lake.read_json(f"{lake.path('validated', 'source=files', 'run=run-2')}/{MANIFEST}")
    assert manifest["already_validated"] == 100 and manifest["late_labels"] == 0
