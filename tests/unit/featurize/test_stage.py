"""The featurize stage: snapshot in, splits and features out, byte-identical on rerun, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines import featurize
from pipelines.featurize import FeaturizeError
from pipelines.featurize.stage import build_features
from tests.support.data import write_snapshot


def _empty(events: pd.DataFrame) -> pd.DataFrame:
    return events.iloc[:0]


def _three_rows(events: pd.DataFrame) -> pd.DataFrame:
    return events.iloc[:3]


def _one_class(events: pd.DataFrame) -> pd.DataFrame:
    return events.assign(churned=np.int8(0))


def _positives_only_in_test(events: pd.DataFrame) -> pd.DataFrame:
    churned = np.zeros(len(events), dtype="int8")
    churned[-5:] = 1
    return events.assign(churned=churned)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_empty, r"snapshot has 0 rows"),
        (_three_rows, r"valid split is empty: 3 snapshot rows"),
        (_one_class, r"single class \(0\) in all 280 train rows"),
        (_positives_only_in_test, r"single class \(0\) in all 280 train rows"),
    ],
    ids=["empty", "empty-split", "one-class", "positives-only-in-test"],
)
def test_unusable_snapshots_fail_clearly(churn, churn_snapshot, make, message):
    with pytest.raises(FeaturizeError, match=message):
        build_features(make(churn_snapshot), churn.schema, churn.featurize)


def test_run_without_snapshot_names_the_file(churn, tmp_path):
    with pytest.raises(FeaturizeError, match=r"data/snapshot/events.parquet not found"):
        featurize.run(churn, None, tmp_path)


def _outputs(workspace: Path) -> dict[str, bytes]:
    files = sorted((workspace / "data").rglob("*"))
    return {
        str(p.relative_to(workspace)): p.read_bytes()
        for p in files
        if p.is_file() and "snapshot" not in p.parts
    }


def test_run_writes_byte_identical_outputs_on_rerun(churn, churn_snapshot, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    for workspace in (first, second):
        write_snapshot(workspace, churn_snapshot)
    summary = featurize.run(churn, None, first)
    before = _outputs(first)
    featurize.run(churn, None, first)
    featurize.run(churn, None, second)

    assert sorted(before) == [
        "data/features/preprocess.json",
        "data/features/test.parquet",
        "data/features/train.parquet",
        "data/features/valid.parquet",
        "data/split/test.parquet",
        "data/split/train.parquet",
        "data/split/valid.parquet",
    ]
    assert _outputs(first) == before
    assert _outputs(second) == before
    assert summary["splits"]["train"]["rows"] == 280


def test_raw_splits_keep_the_snapshot_dtypes(churn, churn_snapshot, tmp_path):
    write_snapshot(tmp_path, churn_snapshot)
    featurize.run(churn, None, tmp_path)
    split = pd.read_parquet(tmp_path / "data/split/test.parquet")
    assert split.dtypes.astype(str).to_dict() == churn_snapshot.dtypes.astype(str).to_dict()
