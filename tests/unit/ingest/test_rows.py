"""Row rules shared by every source: typing, reasons, JSON Lines decoding."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from pipelines.common.config import load_params, parse_params
from pipelines.ingest import rows as records
from tests.support.install import ROOT

PARAMS = load_params(ROOT / "params.yaml")
SCHEMA, CFG = PARAMS.schema, PARAMS.ingest
NOW = pd.Timestamp("2024-06-01T00:00:00Z")
GOOD = {
    "transaction_id": "t-1",
    "event_time": "2024-05-01T10:00:00Z",
    "amount": 12.5,
    "merchant_category": "grocery",
    "country": "US",
    "device": "web",
    "hour_of_day": 10,
    "customer_age": 30,
    "account_tenure_days": 100,
    "is_fraud": 0,
}
NAMES = [f.name for f in records.fields(SCHEMA)]


def coerce_one(**changes):
    """Coerce a single record (GOOD with changes; a value of ... removes the field)."""
    record = {k: v for k, v in {**GOOD, **changes}.items() if v is not ...}
    typed, reasons = records.coerce(records.frame_from_objects([record], NAMES), SCHEMA, CFG, NOW)
    return typed, (reasons.iloc[0] if len(reasons) else None)


# -- refused values -----------------------------------------------------------------------

REFUSED = [
    ({"amount": "abc"}, "field 'amount' = 'abc': expected a number"),
    ({"amount": True}, "field 'amount' = True: expected a number"),
    ({"amount": [1]}, "field 'amount' = [1]: expected a number"),
    ({"amount": {"a": 1}}, "field 'amount' = {'a': 1}: expected a number"),
    ({"amount": float("inf")}, "field 'amount' = inf: expected a finite number"),
    ({"amount": float("-inf")}, "field 'amount' = -inf: expected a finite number"),
    ({"amount": float("nan")}, "field 'amount' = nan: expected a finite number"),
    ({"amount": "1e400"}, "field 'amount' = '1e400': expected a finite number"),
    ({"amount": None}, "missing required field 'amount'"),
    ({"amount": ...}, "missing required field 'amount'"),
    ({"amount": ""}, "missing required field 'amount'"),
    ({"hour_of_day": 3.5}, "field 'hour_of_day' = 3.5: expected an integer"),
    ({"hour_of_day": "3.5"}, "field 'hour_of_day' = '3.5': expected an integer"),
    (
        {"account_tenure_days": 10**30},
        "field 'account_tenure_days' = " + str(10**30) + ": expected an integer",
    ),
    ({"customer_age": float("nan")}, "field 'customer_age' = nan: expected a finite number"),
    ({"device": 7}, "field 'device' = 7: expected a string category"),
    ({"device": None}, "missing required field 'device'"),
    ({"country": ["US"]}, "field 'country' = ['US']: expected a string category"),
    ({"transaction_id": None}, "null key 'transaction_id'"),
    ({"transaction_id": ...}, "null key 'transaction_id'"),
    ({"transaction_id": ""}, "null key 'transaction_id'"),
    ({"transaction_id": [1]}, "field 'transaction_id' = [1]: expected a string or integer key"),
    ({"transaction_id": True}, "field 'transaction_id' = True: expected a string or integer key"),
    (
        {"event_time": "yesterday"},
        "field 'event_time' = 'yesterday': expected an ISO-8601 time or epoch seconds/ms",
    ),
    ({"event_time": True}, "field 'event_time' = True: expected an ISO-8601 time or epoch seconds/ms"),
    (
        {"event_time": "2200-01-01T00:00:00Z"},
        "field 'event_time' = '2200-01-01T00:00:00Z': outside [2000-01-01T00:00:00Z, now + 60 min]",
    ),
    (
        {"event_time": "9999-01-01T00:00:00Z"},
        "field 'event_time' = '9999-01-01T00:00:00Z': outside [2000-01-01T00:00:00Z, now + 60 min]",
    ),
    (
        {"event_time": "1970-01-01T00:00:00Z"},
        "field 'event_time' = '1970-01-01T00:00:00Z': outside [2000-01-01T00:00:00Z, now + 60 min]",
    ),
    ({"event_time": 0}, "field 'event_time' = 0: outside [2000-01-01T00:00:00Z, now + 60 min]"),
    (
        {"event_time": "2024-06-01T01:01:00Z"},
        "field 'event_time' = '2024-06-01T01:01:00Z': outside [2000-01-01T00:00:00Z, now + 60 min]",
    ),
    ({"event_time": None}, "missing required field 'event_time'"),
    ({"is_fraud": 2}, "field 'is_fraud' = 2: expected 0/1 or true/false"),
    ({"is_fraud": "yes"}, "field 'is_fraud' = 'yes': expected 0/1 or true/false"),
    ({"is_fraud": 0.5}, "field 'is_fraud' = 0.5: expected 0/1 or true/false"),
    ({"is_fraud": ...}, "missing required field 'is_fraud'"),
]


@pytest.mark.parametrize(("changes", "reason"), REFUSED, ids=[r for _, r in REFUSED])
def test_refused_values_get_a_reason_naming_field_and_value(changes, reason):
    typed, got = coerce_one(**changes)
    assert got == reason
    assert typed.empty


ACCEPTED = [
    ({"amount": "12.5"}, "amount", 12.5),
    ({"amount": " 7 "}, "amount", 7.0),
    ({"amount": 3}, "amount", 3.0),
    ({"amount": -5.0}, "amount", -5.0),  # ranges are the validation gate's job
    ({"merchant_category": "toaster"}, "merchant_category", "toaster"),  # so is membership
    ({"hour_of_day": "7"}, "hour_of_day", 7),
    ({"hour_of_day": 7.0}, "hour_of_day", 7),
    ({"customer_age": None}, "customer_age", pd.NA),
    ({"customer_age": ...}, "customer_age", pd.NA),
    ({"customer_age": ""}, "customer_age", pd.NA),
    ({"transaction_id": 123}, "transaction_id", "123"),
    ({"is_fraud": True}, "is_fraud", 1),
    ({"is_fraud": "false"}, "is_fraud", 0),
    ({"is_fraud": " TRUE "}, "is_fraud", 1),
    ({"is_fraud": "1"}, "is_fraud", 1),
    ({"is_fraud": 1.0}, "is_fraud", 1),
    ({"event_time": 1714557600}, "event_time", pd.Timestamp("2024-05-01T10:00:00Z")),
    ({"event_time": 1714557600123}, "event_time", pd.Timestamp("2024-05-01T10:00:00.123Z")),
    ({"event_time": "1714557600"}, "event_time", pd.Timestamp("2024-05-01T10:00:00Z")),
    ({"event_time": 1714557600.5}, "event_time", pd.Timestamp("2024-05-01T10:00:00.5Z")),
    ({"event_time": "2024-05-01T12:00:00+02:00"}, "event_time", pd.Timestamp("2024-05-01T10:00:00Z")),
    ({"event_time": "2024-05-01 10:00:00"}, "event_time", pd.Timestamp("2024-05-01T10:00:00Z")),
    ({"event_time": "2024-05-01"}, "event_time", pd.Timestamp("2024-05-01T00:00:00Z")),
    ({"event_time": dt.datetime(2024, 5, 1, 10)}, "event_time", pd.Timestamp("2024-05-01T10:00:00Z")),
    (
        {"event_time": pd.Timestamp("2024-05-01T10:00:00Z")},
        "event_time",
        pd.Timestamp("2024-05-01T10:00:00Z"),
    ),
]


@pytest.mark.parametrize(("changes", "column", "expected"), ACCEPTED, ids=[repr(c) for c, _, _ in ACCEPTED])
def test_accepted_values_are_typed(changes, column, expected):
    typed, reason = coerce_one(**changes)
    assert reason is None
    value = typed[column].iloc[0]
    assert value is pd.NA if expected is pd.NA else value == expected


def test_first_failing_rule_wins_in_key_time_columns_target_order():
    _, reason = coerce_one(transaction_id=None, amount="abc", is_fraud=2)
    assert reason == "null key 'transaction_id'"
    _, reason = coerce_one(event_time="soon", amount="abc")
    assert reason.startswith("field 'event_time'")
    _, reason = coerce_one(amount="abc", is_fraud=2)
    assert reason.startswith("field 'amount'")


def test_typed_frame_has_the_landing_dtypes_and_only_schema_fields():
    record = {**GOOD, "extra": "dropped"}
    raw = records.frame_from_objects([record, {**GOOD, "customer_age": None}], [*NAMES, "extra"])
    typed, reasons = records.coerce(raw, SCHEMA, CFG, NOW)
    assert reasons.empty
    assert list(typed.columns) == NAMES
    assert {c: str(t) for c, t in typed.dtypes.items()} == {
        "transaction_id": "object",
        "event_time": "datetime64[us, UTC]",
        "amount": "float64",
        "merchant_category": "object",
        "country": "object",
        "device": "object",
        "hour_of_day": "Int64",
        "customer_age": "Int64",
        "account_tenure_days": "Int64",
        "is_fraud": "int8",
    }
    assert typed["customer_age"].isna().tolist() == [False, True]


def test_good_and_bad_rows_keep_the_raw_index():
    raw = records.frame_from_objects([GOOD, {**GOOD, "amount": "x"}, GOOD], NAMES)
    raw.index = pd.Index([10, 11, 12])
    typed, reasons = records.coerce(raw, SCHEMA, CFG, NOW)
    assert typed.index.tolist() == [10, 12]
    assert reasons.index.tolist() == [11]


def test_absent_columns_are_missing():
    raw = records.frame_from_objects([GOOD], [n for n in NAMES if n != "customer_age"])
    typed, reasons = records.coerce(raw, SCHEMA, CFG, NOW)
    assert reasons.empty and typed["customer_age"].isna().all()
    raw = records.frame_from_objects([GOOD], [n for n in NAMES if n != "amount"])
    _, reasons = records.coerce(raw, SCHEMA, CFG, NOW)
    assert reasons.tolist() == ["missing required field 'amount'"]


def test_typed_numeric_columns_treat_nan_as_missing():
    raw = pd.DataFrame([GOOD, GOOD])
    raw["customer_age"] = [30.0, np.nan]
    typed, reasons = records.coerce(raw, SCHEMA, CFG, NOW)
    assert reasons.empty
    assert typed["customer_age"].tolist() == [30, pd.NA]


def test_empty_frame_gives_typed_empty_frame():
    typed, reasons = records.coerce(pd.DataFrame(), SCHEMA, CFG, NOW)
    assert typed.empty and reasons.empty
    assert str(typed["event_time"].dtype) == "datetime64[us, UTC]"


def test_arrow_fast_path_and_pandas_fallback_agree():
    times = pd.date_range("2024-01-01", periods=3000, freq="37min", tz="UTC")
    text = [t.strftime("%Y-%m-%dT%H:%M:%S.%fZ") for t in times]
    text[1234] = "not a time"
    text[2000] = "2024-02-03 04:05:06"  # no zone: Arrow refuses, pandas reads it as UTC
    rows = [{**GOOD, "transaction_id": f"t{i}", "event_time": t} for i, t in enumerate(text)]
    typed, reasons = records.coerce(records.frame_from_objects(rows, NAMES), SCHEMA, CFG, NOW)
    assert reasons.index.tolist() == [1234]
    expected = [t for i, t in enumerate(times) if i != 1234]
    expected[1999] = pd.Timestamp("2024-02-03T04:05:06Z")
    assert typed["event_time"].tolist() == expected


def test_a_second_schema_with_other_names_works():
    params = parse_params(
        {
            "schema": {
                "name": "sensors",
                "key": "id",
                "event_time": "ts",
                "target": "label",
                "columns": [
                    {"name": "temp", "type": "float"},
                    {"name": "count", "type": "int", "required": False},
                    {"name": "color", "type": "category", "categories": ["red", "blue"]},
                ],
            }
        }
    )
    rows = [
        {
            "id": "a",
            "ts": "2024-05-01T00:00:00Z",
            "temp": "21.5",
            "count": 3,
            "color": "red",
            "label": "true",
        },
        {"id": "b", "ts": 1714521600, "temp": 20, "color": "green", "label": 0, "amount": "ignored"},
        {"id": "c", "ts": "2024-05-01T00:00:00Z", "temp": "hot", "color": "red", "label": 1},
    ]
    raw = records.frame_from_objects(rows, [f.name for f in records.fields(params.schema)])
    typed, reasons = records.coerce(raw, params.schema, params.ingest, NOW)
    assert list(typed.columns) == ["id", "ts", "temp", "count", "color", "label"]
    assert typed["count"].tolist() == [3, pd.NA]
    assert typed["label"].tolist() == [1, 0]
    assert reasons.tolist() == ["field 'temp' = 'hot': expected a number"]
    table = pa.Table.from_pandas(typed.assign(_origin="x"), schema=records.arrow_schema(params.schema))
    assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("field 'amount' = 'abc': expected a number", "field 'amount': expected a number"),
        ("field 'amount' = 'a: b = c': expected a number", "field 'amount': expected a number"),
        (
            "field 'event_time' = 0: outside [2000-01-01T00:00:00Z, now + 60 min]",
            "field 'event_time': outside [2000-01-01T00:00:00Z, now + 60 min]",
        ),
        ("missing required field 'amount'", "missing required field 'amount'"),
        ("null key 'transaction_id'", "null key 'transaction_id'"),
        ("not JSON: Expecting value (column 1)", "not JSON"),
        ("oversized record: 70000 bytes > max_record_bytes 65536", "oversized record"),
        ("malformed CSV line: expected 10 fields, got 3", "malformed CSV line"),
    ],
)
def test_reason_kind_elides_the_value(reason, kind):
    assert records.reason_kind(reason) == kind


# -- JSON Lines ---------------------------------------------------------------------------

DECODE_REFUSED = [
    (b"{not json}", "not JSON: Expecting property name enclosed in double quotes (column 2)"),
    (b'{"a": 1', "not JSON: Expecting ',' delimiter (column 8)"),
    (b'{"a": "\xff"}', "not UTF-8: invalid byte 0xff at byte 8"),
    (b"[1, 2]", "not a JSON object: got array"),
    (b'"text"', "not a JSON object: got string"),
    (b"42", "not a JSON object: got number"),
    (b"null", "not a JSON object: got null"),
    (b"true", "not a JSON object: got boolean"),
    (b'{"pad": "' + b"x" * 200 + b'"}', "oversized record: 211 bytes > max_record_bytes 100"),
]


@pytest.mark.parametrize(("line", "reason"), DECODE_REFUSED, ids=[r for _, r in DECODE_REFUSED])
def test_decode_json_lines_quarantines_undecodable_lines(line, reason):
    data = b'{"a": 1}\n' + line + b'\n{"a": 2}\n'
    objects, bad = records.decode_json_lines(data, "f.jsonl", max_record_bytes=100)
    assert [o["a"] for o in objects] == [1, 2]
    assert [o["_origin"] for o in objects] == ["f.jsonl:1", "f.jsonl:3"]
    assert bad == [{"origin": "f.jsonl:2", "raw": line.decode("utf-8", "backslashreplace"), "reason": reason}]


def test_decode_json_lines_skips_blank_lines_and_keeps_raw_text():
    data = b'\n{"a": 1}\r\n   \n{"a": NaN}\n\n'
    objects, bad = records.decode_json_lines(data, "f.jsonl", 1000)
    assert bad == []
    assert [o["_origin"] for o in objects] == ["f.jsonl:2", "f.jsonl:4"]
    assert objects[0]["_raw"] == '{"a": 1}'
    assert np.isnan(objects[1]["a"])  # a value (refused later as not finite), not a missing field


def test_read_json_lines_handles_a_bad_line_inside_a_large_chunk():
    lines = [json.dumps({"i": i}).encode() for i in range(10_000)]
    lines[5000] = b"oops"
    decoded = records.read_json_lines(b"\n".join(lines), "big.jsonl", 1000)
    assert len(decoded.objects) == 9_999
    assert [q["origin"] for q in decoded.quarantined] == ["big.jsonl:5001"]
    assert decoded.origins[5000] == "big.jsonl:5002" and decoded.objects[5000] == {"i": 5001}
    frame = decoded.frame(["i"])
    assert list(frame.columns) == ["i", "_origin", "_raw"] and frame["_raw"].iloc[0] == b'{"i": 0}'


def test_frame_from_objects_keeps_missing_apart_from_nan_and_never_infers():
    frame = records.frame_from_objects([{"a": 1.5}, {"a": float("nan")}, {}], ["a", "b"])
    assert frame["a"].dtype == object and frame["b"].isna().all()
    assert frame["a"].iloc[2] is None and np.isnan(frame["a"].iloc[1])


# -- Arrow's one-call decoding of message values agrees with the per-record rules ----------------


def _both_ways(values):
    """(typed, reasons) through Arrow's one-call decoding and through the per-record rules."""
    fast = records.frame_from_json_values(values, SCHEMA, CFG.max_record_bytes)
    assert fast is not None, "expected the one-call path to take these values"
    objects, positions, refused = records.decode_json_values(values, CFG.max_record_bytes)
    assert positions == list(range(len(values))) and not refused
    slow = records.frame_from_objects(objects, NAMES)
    return records.coerce(fast, SCHEMA, CFG, NOW), records.coerce(slow, SCHEMA, CFG, NOW)


def _json(**changes) -> bytes:
    record = {k: v for k, v in {**GOOD, **changes}.items() if v is not ...}
    return json.dumps(record, ensure_ascii=False).encode()


@pytest.mark.parametrize(
    "variants",
    [
        [{}],
        [{}, {"transaction_id": "t-2", "amount": 3}],  # an integer in a float column
        [{"customer_age": None}, {"customer_age": 12}, {"account_tenure_days": ...}],  # null, absent
        [{"transaction_id": 7}, {"transaction_id": 8}],  # integer keys
        [{"event_time": "1999-01-01T00:00:00Z"}, {"event_time": "soon"}, {"event_time": "2024-05-01"}],
        [{"is_fraud": True}, {"is_fraud": False}],  # labels as booleans
        [{"is_fraud": 2}, {"is_fraud": 1}],  # a label that is not one
        [{"device": ...}, {"amount": ..., "extra": [1]}],  # absent fields; an extra field is ignored
        [{"transaction_id": None}, {"transaction_id": ""}, {"country": ""}],  # null and empty values
        [{"merchant_category": "caf\u00e9 \u2615"}],  # UTF-8 text written as is
        [{"amount": 1e300}, {"amount": -0.0}, {"hour_of_day": -5}],  # numbers the gate judges
    ],
)
def test_arrow_decoding_types_and_refuses_like_the_per_record_rules(variants):
    (fast, fast_reasons), (slow, slow_reasons) = _both_ways([_json(**v) for v in variants])
    pd.testing.assert_frame_equal(fast, slow)
    pd.testing.assert_series_equal(fast_reasons, slow_reasons)


@pytest.mark.parametrize(
    "values",
    [
        [b'{"a": 1}', None],  # a missing value
        [b'{"a": 1}', b""],  # an empty one
        [b'{"a": 1}', b'{"a":\n 2}'],  # a newline inside a value
        [b'{"a": 1}', b"[1, 2]"],  # not an object
        [b'{"a": 1} {"a": 2}', b'{"a": 3}'],  # two objects in one value
        [b'{"transaction_id": "t", "amount": NaN}'],  # not standard JSON
        [b'{"amount": 1}', b'{"amount": -Infinity}'],
        [b'{"merchant_category": "\\udc00"}'],  # a lone surrogate
        [b'{"merchant_category": "\xff"}'],  # not UTF-8
        [b'{"amount": 1, "amount": 2}'],  # a field given twice
        [b'{"amount": 1}', b'{"amount": "x"}'],  # a field of two types
        [b'{"amount": {"value": 1}}'],  # a nested field
        [b'{"amount": "12"}'],  # a number written as text
        [b'{"amount": true}'],  # a boolean where a number belongs
        [b'{"customer_age": 12}', b'{"customer_age": 12.5}'],  # a float in an integer field
        [b'{"hour_of_day": 99999999999999999999}'],  # beyond 64 bits
        [b'{"country": true}'],  # a category that is not text
        [b'{"event_time": 1714557600}'],  # an epoch time (the per-record rules read it)
        [b'{"transaction_id": 99999999999999999999}'],  # a key Arrow would read as a float
        [b'{"note": "' + b"x" * 70_000 + b'"}'],  # oversized
        [],
    ],
)
def test_arrow_decoding_leaves_to_the_per_record_rules_what_they_must_decide(values):
    assert records.frame_from_json_values(values, SCHEMA, CFG.max_record_bytes) is None


def test_arrow_decoding_reads_unicode_escapes_like_the_per_record_rules():
    values = [json.dumps({**GOOD, "merchant_category": "caf\u00e9 \U0001f600"}).encode()]  # \\u escapes
    assert b"\\u" in values[0]
    (fast, _), (slow, _) = _both_ways(values)
    pd.testing.assert_frame_equal(fast, slow)
    assert fast["merchant_category"].tolist() == ["caf\u00e9 \U0001f600"]
