"""The predictions manifest: which validated partitions to score, and a partly written partition redone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.common.lake import MANIFEST, Lake
from pipelines.scoring import Model, ScoreError, manifest, plan, score_frame
from pipelines.scoring.stage import score_partition
from tests.support.data import churn_events, churn_params, write_partition

PARAMS = churn_params()
V1, V2 = Model("churn", "1", "run-a"), Model("churn", "2", "run-b")


def predict(rows: pd.DataFrame) -> pd.DataFrame:
    """A stand-in model: a fixed function of tenure."""
    proba = 1 / (1 + np.exp(rows["tenure"].to_numpy() / 20 - 1))
    return pd.DataFrame({"probability": proba, "label": (proba >= 0.5).astype("int64")})


@pytest.mark.parametrize(
    ("scored", "version", "rescore", "expected"),
    [
        ({}, "1", False, (("a", "b", "c"), (), ())),
        ({"a": "1"}, "1", False, (("b", "c"), ("a",), ())),
        ({"a": "1", "b": "1", "c": "1"}, "1", False, ((), ("a", "b", "c"), ())),
        ({"a": "1", "b": "1"}, "2", False, (("c",), ("a", "b"), ())),  # a new champion: new partitions only
        (
            {"a": "1", "b": "2"},
            "2",
            True,
            (("a", "c"), ("b",), ("a",)),
        ),  # rescore what another version scored
        ({"a": "2", "b": "2", "c": "2"}, "2", True, ((), ("a", "b", "c"), ())),  # a rescore is idempotent too
    ],
)
def test_plan(scored, version, rescore, expected):
    manifests = {name: {"model_version": v} for name, v in scored.items()}
    result = plan(["a", "b", "c"], manifests, version, rescore)
    assert (result.score, result.skipped, result.rescored) == expected


def validated_lake(tmp_path, parts: int = 3) -> tuple[Lake, list[str]]:
    lake = Lake(str(tmp_path / "lake"))
    events = churn_events(300)
    size = len(events) // parts
    for i in range(parts):
        frame = events.iloc[i * size : (i + 1) * size]
        write_partition(lake, "validated", frame, f"run-{i}", written_at=f"2026-01-0{i + 1}")
    return lake, manifest.validated_partitions(lake)


def test_scored_partitions_are_skipped_and_counted_by_version(tmp_path):
    lake, names = validated_lake(tmp_path)
    assert names == [f"source=files/run=run-{i}" for i in range(3)]
    for name in names[:2]:
        score_partition(lake, name, PARAMS, predict, V1, "score-1")
    scored = manifest.scored_manifests(lake)
    assert plan(names, scored, "1", False).score == (names[2],)
    assert manifest.by_version(scored) == {"churn v1": 200}
    assert scored[names[0]]["validated"] == f"validated/{names[0]}"
    assert scored[names[0]]["model_run_id"] == "run-a" and scored[names[0]]["scoring_run_id"] == "score-1"


def test_a_partition_written_without_its_manifest_is_scored_again_and_overwritten(tmp_path):
    lake, names = validated_lake(tmp_path)
    target = manifest.partition_path(lake, names[0])
    lake.write_bytes(f"{target}/{manifest.PART}", b"torn parquet")  # killed before the manifest
    lake.write_bytes(f"{target}/{manifest.PART}.tmp", b"killed mid-write")
    assert manifest.scored_manifests(lake) == {}
    assert plan(names, {}, "2", False).score == tuple(names)
    score_partition(lake, names[0], PARAMS, predict, V2, "score-2")
    frame = lake.read_partition(target)
    assert len(frame) == 100 and frame["customer_id"].is_unique
    assert set(frame["model_version"]) == {"2"}
    assert sorted(lake.fs.ls(target, detail=False)) == sorted(
        [f"{target}/{MANIFEST}", f"{target}/{manifest.PART}"]
    )


def test_score_frame_keeps_key_time_label_and_model():
    events = churn_events(50)
    out = score_frame(events, PARAMS.schema, predict, V1, "score-1")
    assert list(out["customer_id"]) == list(events["customer_id"])
    assert (out["observed_at"] == events["observed_at"]).all()
    assert out["observed_at"].dtype == events["observed_at"].dtype  # zone-aware, never object
    assert out["customer_id"].dtype == "string"
    assert list(out["churned"]) == list(events["churned"])
    assert np.allclose(out["score"], predict(events)["probability"])
    assert set(out["model_version"]) == {"1"} and set(out["scoring_run_id"]) == {"score-1"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns=["tenure"]), r"lack column\(s\) \['tenure'\]"),
        (lambda f: f.drop(columns=["customer_id"]), r"lack column\(s\) \['customer_id'\]"),
    ],
)
def test_score_frame_refuses_rows_without_the_schema_columns(change, message):
    with pytest.raises(ScoreError, match=message):
        score_frame(change(churn_events(10)), PARAMS.schema, predict, V1, "r")


def test_a_model_answering_the_wrong_number_of_rows_is_named():
    with pytest.raises(ScoreError, match=r"models:/churn/1 returned 9 predictions for 10 rows"):
        score_frame(churn_events(10), PARAMS.schema, lambda rows: predict(rows).iloc[:9], V1, "r")


@pytest.mark.parametrize("task", ["regression", "multiclass"])
def test_score_frame_follows_the_task(task):
    """A regression model's number is its score and prediction; a multiclass model's predicted class is
    the prediction and its probability the score; the label keeps the target's type; the lake can hold it."""
    import pyarrow as pa

    from pipelines.common.config import load_params
    from pipelines.demo.variants import generate_task

    example = {"regression": "delivery-times", "multiclass": "support-tickets"}[task]
    params = load_params(Path(__file__).parents[3] / "examples" / example / "params.yaml")
    schema = params.schema
    events = generate_task(task, 40, seed=3)
    rng = np.random.default_rng(0)
    if task == "regression":
        answer = pd.DataFrame({"prediction": rng.normal(30, 5, len(events))})
    else:
        classes = list(schema.classes or ())
        answer = pd.DataFrame(
            {"label": rng.choice(classes, len(events)), "probability": rng.uniform(0.3, 1, len(events))}
        )
    out = score_frame(events, schema, lambda rows: answer, V1, "score-1")
    pa.Table.from_pandas(out, preserve_index=False)  # what the stage writes to the predictions tier
    if task == "regression":
        assert np.allclose(out["score"], answer["prediction"]) and np.allclose(
            out["prediction"], answer["prediction"]
        )
        assert np.allclose(out[schema.target].astype(float), events[schema.target].astype(float))
    else:
        assert list(out["prediction"]) == list(answer["label"]) and np.allclose(
            out["score"], answer["probability"]
        )
        assert list(out[schema.target]) == list(events[schema.target].astype(str))
