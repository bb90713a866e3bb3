"""The check of an online request against the schema: the typed frame, or the record, field and rule."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from pipelines.common.config import Column, ParamsError, Schema, parse_params
from pipelines.scoring.serve.errors import InvalidRecord
from pipelines.scoring.serve.requests import RecordChecker

SCHEMA = Schema(
    name="t",
    key="id",
    event_time="ts",
    target="y",
    columns=(
        Column(name="amount", type="float", min=0, max=100),
        Column(name="age", type="int", min=18, required=False),
        Column(name="device", type="category", categories=("web", "pos")),
    ),
)
GOOD = {"amount": 12.5, "age": 30, "device": "web"}


def checker(unknown: str = "reject", max_rows: int = 10) -> RecordChecker:
    return RecordChecker(SCHEMA, unknown, max_rows)  # type: ignore[arg-type]


def test_records_become_the_lake_dtypes_and_keys_are_kept():
    frame, keys = checker().frame(
        {"records": [{**GOOD, "id": "k1", "ts": "2026-01-01", "y": 1}, {"amount": 3, "device": "pos"}]}
    )
    assert list(frame.columns) == ["amount", "age", "device"]
    assert frame["amount"].dtype == "float64" and frame["age"].dtype == pd.Int64Dtype()
    assert frame["amount"].tolist() == [12.5, 3.0]
    assert frame["age"].iloc[0] == 30 and frame["age"].isna().iloc[1]
    assert frame["device"].tolist() == ["web", "pos"]
    assert keys == ["k1", None]


def test_a_bare_list_is_a_request_and_no_key_means_no_keys():
    frame, keys = checker().frame([GOOD])
    assert len(frame) == 1 and keys is None


@pytest.mark.parametrize(
    ("record", "field", "value", "rule"),
    [
        ({"age": 30, "device": "web"}, "amount", None, "missing; expected a float (a required column)"),
        ({**GOOD, "amount": None}, "amount", None, "missing"),
        ({**GOOD, "amount": "12"}, "amount", "12", "expected a finite number between 0 and 100"),
        ({**GOOD, "amount": True}, "amount", True, "expected a finite number"),
        ({**GOOD, "amount": math.inf}, "amount", math.inf, "expected a finite number"),
        ({**GOOD, "amount": -1}, "amount", -1, "between 0 and 100"),
        ({**GOOD, "amount": 100.5}, "amount", 100.5, "between 0 and 100"),
        ({**GOOD, "age": 30.5}, "age", 30.5, "expected an integer >= 18"),
        ({**GOOD, "age": 17}, "age", 17, "expected an integer >= 18"),
        ({**GOOD, "device": 3}, "device", 3, "expected a string category, one of: web, pos"),
        ({**GOOD, "device": "fax"}, "device", "fax", "unknown category; expected one of: web, pos"),
        ({**GOOD, "colour": "red"}, "colour", "red", "unknown field; expected only"),
    ],
)
def test_a_broken_rule_names_the_record_field_value_and_rule(record, field, value, rule):
    with pytest.raises(InvalidRecord) as caught:
        checker().frame({"records": [GOOD, record]})
    error = caught.value
    assert (error.row, error.field, error.value) == (1, field, value)
    assert rule in error.rule
    assert str(error).startswith(f"field {field!r} of record 1 = ")
    assert error.detail()["rule"] == error.rule


@pytest.mark.parametrize(
    ("payload", "field", "rule"),
    [
        ({"rows": [GOOD]}, "rows", 'expected a JSON body {"records"'),
        ({"records": GOOD}, "records", "expected a JSON body"),
        ("text", "records", "expected a JSON body"),
        ({"records": []}, "records", "expected at least one record"),
        ({"records": [GOOD] * 11}, "records", "expected at most 10 records (serve.max_rows)"),
        ([GOOD, [1, 2]], None, "expected a JSON object of the schema fields"),
    ],
)
def test_a_malformed_body_is_refused(payload, field, rule):
    with pytest.raises(InvalidRecord, match="expected") as caught:
        checker().frame(payload)
    assert caught.value.field == field and rule in caught.value.rule


def test_unknown_categories_are_scored_when_the_policy_says_so():
    frame, _ = checker(unknown="score").frame([{**GOOD, "device": "fax"}])
    assert frame["device"].tolist() == ["fax"]


@pytest.mark.parametrize(
    ("serve", "fragment"),
    [
        ({"unknown_category": "guess"}, "serve.unknown_category = 'guess'"),
        ({"poll_seconds": 0}, "serve.poll_seconds = 0"),
        ({"max_rows": 0}, "serve.max_rows = 0"),
    ],
)
def test_bad_serve_params_fail_at_load_time(demo_params, serve, fragment):
    data = {**demo_params.model_dump(by_alias=True), "serve": serve}
    with pytest.raises(ParamsError, match=fragment.replace(".", r"\.")):
        parse_params(data)
