"""Scoring validated partitions in batches: one model call per batch, each partition still written with
its own manifest, in order, and a failure mid-run leaving only whole, manifested partitions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.common.lake import Lake
from pipelines.scoring import Model, manifest, score_frame
from pipelines.scoring.stage import score_frames, score_partitions
from tests.support.data import churn_events, churn_params, write_partition

V1 = Model("churn", "1", "run-a")


class CountingModel:
    """A stand-in model (a fixed function of tenure) that records the rows of each call; it can fail
    on a given call."""

    def __init__(self, fail_on_call: int | None = None) -> None:
        self.calls: list[int] = []
        self.fail_on_call = fail_on_call

    def __call__(self, rows: pd.DataFrame) -> pd.DataFrame:
        self.calls.append(len(rows))
        if len(self.calls) == self.fail_on_call:
            raise RuntimeError("the model process died")
        proba = 1 / (1 + np.exp(rows["tenure"].to_numpy() / 20 - 1))
        return pd.DataFrame({"probability": proba, "label": (proba >= 0.5).astype("int64")})


def validated_lake(tmp_path, sizes: list[int]) -> tuple[Lake, list[str]]:
    lake = Lake(str(tmp_path / "lake"))
    events, start = churn_events(sum(sizes)), 0
    for i, size in enumerate(sizes):
        write_partition(
            lake, "validated", events.iloc[start : start + size], f"run-{i}", written_at=f"2026-01-0{i + 1}"
        )
        start += size
    return lake, manifest.validated_partitions(lake)


def test_score_frames_calls_the_model_once_and_matches_frame_by_frame():
    params, events = churn_params(), churn_events(90)
    frames = [events.iloc[:20], events.iloc[20:50], events.iloc[50:]]
    model = CountingModel()
    together = score_frames(frames, params.schema, model, V1, "score-1")
    assert model.calls == [90]
    for frame, out in zip(frames, together, strict=True):
        pd.testing.assert_frame_equal(out, score_frame(frame, params.schema, CountingModel(), V1, "score-1"))


@pytest.mark.parametrize(
    ("batch_rows", "calls"),
    [(1, [100, 100, 100]), (150, [200, 100]), (300, [300]), (10_000, [300])],
)
def test_partitions_are_batched_up_to_batch_rows_and_written_one_by_one(tmp_path, batch_rows, calls):
    params = churn_params(score={"batch_rows": batch_rows})
    lake, names = validated_lake(tmp_path, [100, 100, 100])
    model = CountingModel()
    entries = score_partitions(lake, names, params, lambda: model, V1, "score-1")
    assert model.calls == calls
    assert [e["validated"] for e in entries] == [f"validated/{n}" for n in names]
    assert set(manifest.scored_manifests(lake)) == set(names)
    for name in names:
        written = lake.read_partition(manifest.partition_path(lake, name))
        source = lake.read_partition(manifest.partition_path(lake, name, manifest.VALIDATED))
        assert list(written["customer_id"]) == list(source["customer_id"])


def test_a_batch_that_fails_leaves_earlier_partitions_whole_and_the_rest_unscored(tmp_path):
    params = churn_params(score={"batch_rows": 150})
    lake, names = validated_lake(tmp_path, [100, 100, 100])
    with pytest.raises(RuntimeError, match="died"):
        score_partitions(lake, names, params, lambda: CountingModel(fail_on_call=2), V1, "score-1")
    assert set(manifest.scored_manifests(lake)) == set(names[:2])
    assert not lake.fs.exists(manifest.partition_path(lake, names[2]))
    entries = score_partitions(lake, names[2:], params, CountingModel, V1, "score-2")  # the next run
    assert [e["rows"] for e in entries] == [100]
    assert manifest.by_version(manifest.scored_manifests(lake)) == {"churn v1": 300}
