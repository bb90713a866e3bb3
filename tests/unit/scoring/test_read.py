"""What scoring reads of a validated partition (the schema's columns only, in their lake dtypes) and the
table it writes (the same as pandas' own conversion gives)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from pipelines.common.lake import Lake
from pipelines.scoring import Model, manifest, score_frame
from pipelines.scoring.stage import prediction_table, read_validated
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


@pytest.mark.parametrize("rows", [0, 1, 57])
def test_the_written_table_is_what_pandas_would_convert(rows):
    def predict(frame: pd.DataFrame) -> pd.DataFrame:
        proba = np.linspace(0, 1, len(frame))
        return pd.DataFrame({"probability": proba, "label": (proba >= 0.5).astype("int64")})

    predictions = score_frame(
        churn_events(60).head(rows), PARAMS.schema, predict, Model("churn", "3", "r"), "s-1"
    )
    constant = {"model_name": "churn", "model_version": "3", "model_run_id": "r", "scoring_run_id": "s-1"}
    table = prediction_table(predictions, constant)
    expected = pa.Table.from_pandas(predictions, preserve_index=False)
    if rows == 0:  # pandas types an empty object column as null; the run's columns stay strings
        assert all(table.schema.field(name).type == pa.string() for name in constant)
        expected = expected.select(list(predictions.columns[: -len(constant)]))
        table = table.select(expected.column_names)
    assert table.schema.remove_metadata() == expected.schema.remove_metadata()
    assert table.to_pylist() == expected.to_pylist()
    pd.testing.assert_frame_equal(table.to_pandas(), expected.to_pandas())


def _task_case(task: str):
    """Validated rows of ``task`` as the lake holds them, and a model answering for them."""
    from pathlib import Path

    from pipelines.common.config import load_params
    from pipelines.demo.variants import generate_task

    if task == "binary":
        params, events = PARAMS, churn_events(50)
    else:
        example = {"regression": "delivery-times", "multiclass": "support-tickets"}[task]
        params = load_params(Path(__file__).parents[3] / "examples" / example / "params.yaml")
        events = generate_task(task, 50, seed=3)
    rng = np.random.default_rng(0)
    if task == "regression":
        answer = pd.DataFrame({"prediction": rng.normal(30, 5, len(events))})
    elif task == "multiclass":
        answer = pd.DataFrame(
            {
                "label": rng.choice(list(params.schema.classes or ()), len(events)),
                "probability": rng.uniform(0.3, 1, len(events)),
            }
        )
    else:
        proba = rng.uniform(0, 1, len(events))
        answer = pd.DataFrame({"probability": proba, "label": (proba >= 0.5).astype("int64")})
    return params.schema, events, answer


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize("labelled", [True, False])
def test_arrow_scoring_writes_what_the_pandas_path_writes(task, labelled):
    """The stage scores Arrow tables (only the features become pandas); the predictions table it writes
    has the same columns, types, pandas metadata and values as the pandas path, split at the same rows."""
    from pipelines.scoring.stage import score_frames, score_tables

    schema, events, answer = _task_case(task)
    if not labelled:
        events = events.drop(columns=[schema.target])
    table = pa.Table.from_pandas(events, preserve_index=False)
    parts = [table.slice(0, 20), table.slice(20)]
    model = Model("m", "4", "run-a")
    tables = score_tables(parts, schema, lambda rows: answer, model, "s-9")
    frames = score_frames([p.to_pandas() for p in parts], schema, lambda rows: answer, model, "s-9")
    constant = {"model_name": "m", "model_version": "4", "model_run_id": "run-a", "scoring_run_id": "s-9"}
    for got, frame in zip(tables, frames, strict=True):
        expected = prediction_table(frame, constant)
        assert got.schema.equals(expected.schema, check_metadata=True)
        assert got.to_pylist() == expected.to_pylist()
        pd.testing.assert_frame_equal(got.to_pandas(), expected.to_pandas())


def test_a_partition_read_decodes_only_the_columns_asked_for(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    events = churn_events(40).assign(_origin="file-a")
    write_partition(lake, "validated", [events.iloc[:15], events.iloc[15:]], "run-0")
    (name,) = manifest.validated_partitions(lake)
    path = manifest.partition_path(lake, name, manifest.VALIDATED)
    table = lake.read_partition_table(path, ["plan", "not_there", "customer_id"], missing_ok=True)
    assert sorted(table.column_names) == ["customer_id", "plan"] and table.num_rows == 40
    with pytest.raises(pa.ArrowInvalid, match="not_there"):
        lake.read_partition_table(path, ["plan", "not_there"])
