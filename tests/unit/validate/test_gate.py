"""The gate's verdict on one batch: what failed, with examples, within the tolerance, with Data Docs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipelines.common.config import Params, Schema, load_params
from pipelines.validate.gate import MAX_EXAMPLES, ValidationOutcome, describe_failure, validate_frame
from pipelines.validate.suite import build_suite
from tests.support.data import sensor_frame, sensor_params, spoil
from tests.support.install import ROOT


def schema_frame(schema: Schema, rows: int = 200) -> pd.DataFrame:
    """A clean batch for any schema: mid-range numbers, categories in turn, 10% positives."""
    data: dict = {
        schema.key: [f"k{i}" for i in range(rows)],
        schema.event_time: pd.date_range("2024-05-01", periods=rows, freq="min", tz="UTC"),
        schema.target: (np.arange(rows) % 10 == 0).astype("int8"),
    }
    for column in schema.columns:
        if column.categories:
            data[column.name] = [column.categories[i % len(column.categories)] for i in range(rows)]
        else:
            low = column.min if column.min is not None else 0
            high = column.max if column.max is not None else 1
            dtype = "float64" if column.type == "float" else "int64"
            data[column.name] = np.full(rows, (low + high) / 2, dtype=dtype)
    return pd.DataFrame(data)


def run_suite(frame: pd.DataFrame, params: Params | None = None, **kwargs) -> ValidationOutcome:
    params = params or sensor_params()
    return validate_frame(frame, params.schema, params.validation, **kwargs)


def failed(outcome: ValidationOutcome) -> dict[tuple[str, str | None], dict]:
    return {(f["expectation"], f["column"]): f for f in outcome.failures}


# -- the verdict ---------------------------------------------------------------------------------


def test_a_clean_batch_passes():
    params = sensor_params()
    outcome = run_suite(sensor_frame(), params)

    assert outcome.success, [describe_failure(f) for f in outcome.failures]
    assert outcome.failures == []
    assert outcome.statistics["unsuccessful_expectations"] == 0
    suite = build_suite(params.schema, params.validation)
    assert outcome.statistics["evaluated_expectations"] == len(suite.expectations)
    assert outcome.result["success"] is True
    json.dumps(outcome.to_json())  # the whole outcome is JSON-able


FAILING = [
    # case id, how the clean batch is spoiled, (expectation, column) that must fail, an example value
    (
        "out of range above mostly",
        spoil("temperature", -5.0, 0.35),
        ("expect_column_values_to_be_between", "temperature"),
        -5.0,
    ),
    (
        "category outside the set",
        spoil("site", "z", 0.05),
        ("expect_column_values_to_be_in_set", "site"),
        "z",
    ),
    (
        "optional column too often null",
        spoil("reading_count", pd.NA, 0.10),
        ("expect_column_values_to_not_be_null", "reading_count"),
        None,
    ),
    (
        "required column null",
        spoil("temperature", np.nan, 0.005),
        ("expect_column_values_to_not_be_null", "temperature"),
        None,
    ),
    (
        "key null",
        spoil("reading_id", None, 0.005),
        ("expect_column_values_to_not_be_null", "reading_id"),
        None,
    ),
    (
        "duplicate keys",
        spoil("reading_id", "dup", 0.02),
        ("expect_column_values_to_be_unique", "reading_id"),
        "dup",
    ),
    ("too few rows", lambda f: f.head(10), ("expect_table_row_count_to_be_between", None), None),
    ("target rate above max", spoil("alarm", 1, 0.8), ("expect_column_mean_to_be_between", "alarm"), None),
    ("target not binary", spoil("alarm", 2, 0.005), ("expect_column_values_to_be_in_set", "alarm"), 2),
    ("missing column", lambda f: f.drop(columns=["site"]), ("expect_column_to_exist", "site"), None),
]


@pytest.mark.parametrize(
    ("spoil", "expected", "example"), [c[1:] for c in FAILING], ids=[c[0] for c in FAILING]
)
def test_a_spoiled_batch_fails_naming_the_expectation(spoil, expected, example):
    outcome = run_suite(spoil(sensor_frame()))

    assert not outcome.success
    assert expected in failed(outcome), [describe_failure(f) for f in outcome.failures]
    failure = failed(outcome)[expected]
    described = describe_failure(failure)
    assert described.startswith(expected[0] + (f"({expected[1]})" if expected[1] else ""))
    if example is not None:
        assert example in failure["partial_unexpected_list"]
        assert 0 < len(failure["partial_unexpected_list"]) <= MAX_EXAMPLES
        assert repr(example) in described


@pytest.mark.parametrize(
    ("spoil", "case"),
    [
        (spoil("temperature", 150.0, 0.005), "out of range below 1 - mostly"),
        (spoil("site", "z", 0.005), "unknown category below 1 - mostly"),
        (spoil("reading_count", pd.NA, 0.04), "optional nulls below max_null_fraction"),
    ],
)
def test_a_few_bad_values_within_the_tolerance_pass(spoil, case):
    outcome = run_suite(spoil(sensor_frame()))

    assert outcome.success, (case, [describe_failure(f) for f in outcome.failures])


def test_out_of_range_failure_says_share_and_examples():
    outcome = run_suite(spoil("temperature", -5.0, 0.35)(sensor_frame()))
    failure = failed(outcome)[("expect_column_values_to_be_between", "temperature")]

    assert failure["unexpected_count"] == 70
    assert failure["kwargs"] == {
        "column": "temperature",
        "min_value": 0.0,
        "max_value": 100.0,
        "mostly": 0.99,
    }
    assert describe_failure(failure).startswith(
        "expect_column_values_to_be_between(temperature) unexpected 35.0% (70 rows): examples [-5.0,"
    )


def test_target_rate_failure_reports_the_observed_mean():
    outcome = run_suite(sensor_frame(), sensor_params(min_target_rate=0.3, max_target_rate=0.6))
    failure = failed(outcome)[("expect_column_mean_to_be_between", "alarm")]

    assert failure["observed_value"] == pytest.approx(0.1)
    assert "observed 0.1" in describe_failure(failure)


def test_repo_params_suite_passes_a_clean_batch_and_catches_an_out_of_range_value():
    params = load_params(ROOT / "params.yaml")
    frame = schema_frame(params.schema)
    numeric = params.schema.numeric[0]

    assert run_suite(frame, params).success
    frame.loc[: len(frame) // 2, numeric.name] = (numeric.max or 0) + 1
    assert ("expect_column_values_to_be_between", numeric.name) in failed(run_suite(frame, params))


# -- Data Docs -----------------------------------------------------------------------------------


def test_data_docs_are_written_for_the_validation(tmp_path):
    docs = tmp_path / "docs"
    spoiled = spoil("site", "z", 0.05)(sensor_frame())
    outcome = run_suite(spoiled, docs_dir=str(docs), run_name="source=s/run=1")

    assert outcome.docs_index == str(docs / "index.html")
    assert "sensor" in (docs / "index.html").read_text()
    pages = list((docs / "validations" / "sensor").rglob("*.html"))
    assert len(pages) == 1 and "source=s__run=1" in str(pages[0])
    page = pages[0].read_text()
    assert "Failed" in page and "values must belong to this set" in page


def test_no_docs_dir_means_no_docs(tmp_path):
    assert run_suite(sensor_frame()).docs_index is None
