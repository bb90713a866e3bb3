"""Kafka message values to typed rows or quarantine entries (pure: no broker)."""

from __future__ import annotations

import base64
import json

import pandas as pd
import pyarrow as pa
import pytest

from pipelines.ingest import rows as records
from pipelines.ingest.kafka_clients import Segment
from pipelines.ingest.messages import decode_segments

NOW = pd.Timestamp("2026-06-01T00:00:00Z")
GOOD = {
    "transaction_id": "k",
    "event_time": "2026-05-01T10:00:00Z",
    "amount": 12.5,
    "merchant_category": "fuel",
    "country": "US",
    "device": "pos",
    "hour_of_day": 10,
    "customer_age": None,
    "account_tenure_days": 3,
    "is_fraud": 0,
}


def value(**changes) -> bytes:
    return json.dumps({**GOOD, **changes}).encode()


def segment(values: list[bytes | None], partition: int = 0, first: int = 0) -> Segment:
    offsets = list(range(first, first + len(values)))
    return Segment("events", partition, offsets, [f"key-{o}".encode() for o in offsets], values)


def decode(segments, demo_params):
    return decode_segments(segments, demo_params.schema, demo_params.ingest, NOW)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (b"{not json", "not JSON"),
        (None, records.NO_VALUE),
        (b"", "not JSON"),
        (b"\xff\xfe", "not UTF-8: invalid byte 0xff"),
        (b"[1, 2]", "not a JSON object: got array"),
        (value(transaction_id=None), "null key 'transaction_id'"),
        (value(amount="x"), "field 'amount' = 'x': expected a number"),
        (value(event_time="1999-12-31T00:00:00Z"), "field 'event_time' = '1999-12-31T00:00:00Z': outside"),
        (value(hour_of_day=1.5), "field 'hour_of_day' = 1.5: expected an integer"),
        (value().replace(b'"fuel"', b'"\\udc00"'), "not UTF-8: a \\u escape decodes to a lone surrogate"),
        (value(note="x" * 70_000), "oversized record: "),
    ],
)
def test_each_bad_message_is_quarantined_with_its_place_bytes_and_reason(demo_params, bad, reason):
    chunk = decode(
        [segment([value(transaction_id="a"), bad, value(transaction_id="b")], partition=2, first=40)],
        demo_params,
    )

    assert list(chunk.frame["transaction_id"]) == ["a", "b"]
    assert list(chunk.frame[records.ORIGIN]) == ["events:2:40", "events:2:42"]
    (entry,) = chunk.quarantined
    assert entry["reason"].startswith(reason)
    assert (entry["topic"], entry["partition"], entry["offset"], entry["origin"]) == (
        "events",
        2,
        41,
        "events:2:41",
    )
    assert entry["raw_base64"] == (None if bad is None else base64.b64encode(bad).decode())
    assert base64.b64decode(entry["key_base64"]) == b"key-41"


def test_rows_keep_their_origin_across_segments_and_have_the_landing_types(demo_params):
    segments = [
        segment([value(transaction_id=f"p0-{i}") for i in range(5000)], partition=0),
        segment([b"bad", value(transaction_id="p1-0")], partition=1, first=7),
    ]

    chunk = decode(segments, demo_params)

    assert len(chunk.frame) + len(chunk.quarantined) == 5002
    assert (
        chunk.frame[records.ORIGIN].iloc[-1] == "events:1:8"
        and chunk.quarantined[0]["origin"] == "events:1:7"
    )
    table = pa.Table.from_pandas(
        chunk.frame, schema=records.arrow_schema(demo_params.schema), preserve_index=False
    )
    assert table.num_rows == 5001
    assert chunk.reasons() == {"not JSON": 1}


def test_an_empty_chunk_decodes_to_nothing(demo_params):
    chunk = decode([], demo_params)
    assert chunk.frame.empty and chunk.quarantined == []


def test_decode_json_values_keeps_positions_and_explains_every_refusal():
    objects, positions, refused = records.decode_json_values([b'{"a": 1}', None, b"x", b'{"b": 2}'], 100)
    assert objects == [{"a": 1}, {"b": 2}] and positions == [0, 3]
    assert [p for p, _ in refused] == [1, 2] and refused[0][1] == records.NO_VALUE
