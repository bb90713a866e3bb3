"""What scoring reads of a validated partition: the schema's columns only, in their lake dtypes."""

from __future__ import annotations

import pandas as pd

from pipelines.common.lake import Lake
from pipelines.scoring import manifest
from pipelines.scoring.stage import read_validated
from tests.support.data import churn_events, churn_params, write_partition

PARAMS = churn_params()


def test_read_validated_keeps_the_schema_columns_of_every_part(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    events = churn_events(60).assign(_origin="file-a")
    write_partition(lake, "validated", [events.iloc[:25], events.iloc[25:]], "run-0")
    (name,) = manifest.validated_partitions(lake)
    frame = read_validated(lake, name, PARAMS.schema)
    assert list(frame.columns) == ["customer_id", "observed_at", "tenure", "plan", "support_calls", "churned"]
    expected = lake.read_partition(manifest.partition_path(lake, name, manifest.VALIDATED))[frame.columns]
    pd.testing.assert_frame_equal(frame, expected)
    assert (
        str(frame["support_calls"].dtype) == "Int64"
        and str(frame["observed_at"].dtype) == "datetime64[us, UTC]"
    )


def test_read_validated_without_labels_leaves_the_target_out(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    write_partition(lake, "validated", churn_events(30).drop(columns=["churned"]), "run-0")
    (name,) = manifest.validated_partitions(lake)
    assert "churned" not in read_validated(lake, name, PARAMS.schema).columns
