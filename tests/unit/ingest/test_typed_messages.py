"""Messages typed in Arrow alone give the rows the per-record rules give, or step aside for them.

:func:`typed_segments` is the fast path of Kafka ingestion; :func:`decode_segments` (pandas, the
row rules of every source) is the reference. Whatever the values, the fast path returns either
exactly the reference's rows (types and pandas metadata included) or None, never rows the
reference would quarantine.
"""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.common.config import Params, load_params
from pipelines.common.lake import Lake
from pipelines.demo import generator as demo
from pipelines.ingest import rows as records
from pipelines.ingest.kafka import ChunkBuilder, ChunkTarget
from pipelines.ingest.kafka_clients import Segment
from pipelines.ingest.messages import decode_segments, landing_schema, typed_segments
from tests.support.install import ROOT

NOW = pd.Timestamp("2026-12-01T00:00:00Z")
GOOD = {
    "transaction_id": "k",
    "event_time": "2026-05-01T10:00:00Z",
    "amount": 12.5,
    "merchant_category": "fuel",
    "country": "US",
    "device": "pos",
    "hour_of_day": 10,
    "customer_age": 40,
    "account_tenure_days": 3,
    "is_fraud": 0,
}


def values(n: int = 6, every: int = 2, **changes) -> list[bytes]:
    """``n`` clean messages with distinct keys; ``changes`` apply to every ``every``-th one."""
    out = []
    for i in range(n):
        record = {**GOOD, "transaction_id": f"k{i}"}
        if i % every == every - 1:
            record.update(changes)
        out.append(json.dumps({k: v for k, v in record.items() if v is not _ABSENT}).encode())
    return out


_ABSENT = object()


def segments(messages: list[bytes | None]) -> list[Segment]:
    half = len(messages) // 2
    first, second = messages[:half], messages[half:]
    return [
        Segment("events", 0, list(range(len(first))), [b"k"] * len(first), first),
        Segment("events", 1, list(range(100, 100 + len(second))), [None] * len(second), second),
    ]


def both_paths(messages: list[bytes | None], params: Params) -> tuple[pa.Table | None, pa.Table, int]:
    """The fast path's table (None: it stepped aside), the reference's, and how many it quarantined."""
    segs = segments(messages)
    read = records.json_values_table(
        [v for s in segs for v in s.values], params.schema, params.ingest.max_record_bytes
    )
    fast = typed_segments(segs, read, params.schema, params.ingest, NOW)
    decoded = decode_segments(segs, params.schema, params.ingest, NOW)
    schema = landing_schema(params.schema, params.ingest, NOW)
    reference = pa.Table.from_pandas(decoded.frame, schema=schema, preserve_index=False)
    if fast is not None:
        fast = fast.replace_schema_metadata(schema.metadata)
    return fast, reference, len(decoded.quarantined)


def demo_values(n: int, seed: int) -> list[bytes]:
    return [v for v in demo.messages(n, seed=seed, batch="typed")[1] if v is not None]


@pytest.mark.parametrize(
    "messages",
    [
        pytest.param(demo_values(500, 1), id="demo events"),
        pytest.param(values(customer_age=None), id="an optional field null"),
        pytest.param(values(customer_age=_ABSENT), id="an optional field absent"),
        pytest.param(
            [json.dumps({**GOOD, "customer_age": None}).encode()] * 3, id="an optional field all null"
        ),
        pytest.param(
            [json.dumps({**GOOD, "transaction_id": i}).encode() for i in range(4)], id="integer keys"
        ),
        pytest.param(values(every=1, is_fraud=True), id="true/false targets"),
        pytest.param(values(amount=12), id="whole amounts"),
        pytest.param(values(every=1, amount=2**60 + 1), id="an amount beyond float precision"),
        pytest.param(values(event_time="2026-05-01T12:00:00.123456+02:00"), id="times with an offset"),
        pytest.param(values(extra={"nested": [1, 2]}), id="an extra field"),
    ],
)
def test_the_fast_path_types_clean_messages_exactly_as_the_row_rules_do(demo_params, messages):
    fast, reference, quarantined = both_paths(messages, demo_params)

    assert quarantined == 0
    assert fast is not None
    assert fast.equals(reference, check_metadata=True)


@pytest.mark.parametrize(
    "messages",
    [
        pytest.param(values(merchant_category=""), id="an empty category"),
        pytest.param(values(customer_age=""), id="an empty optional field"),
        pytest.param(values(event_time="1999-12-31T00:00:00Z"), id="a time before the accepted range"),
        pytest.param(values(event_time="2027-06-01T00:00:00Z"), id="a time in the future"),
        pytest.param(values(event_time=1_777_000_000), id="epoch seconds"),
        pytest.param(values(event_time="yesterday"), id="a time that is not one"),
        pytest.param(
            values(every=1, event_time="2026-05-01 10:00:00"), id="naive times (UTC to the row rules)"
        ),
        pytest.param(values(transaction_id=7), id="keys of two JSON types"),
        pytest.param(values(is_fraud=True), id="targets of two JSON types"),
        pytest.param(values(is_fraud=2), id="a target that is not 0/1"),
        pytest.param(values(is_fraud="1"), id="a target written as text"),
        pytest.param(values(hour_of_day=2**60 + 1), id="an integer beyond float precision"),
        pytest.param(values(hour_of_day=-(2**63)), id="the smallest 64-bit integer"),
        pytest.param(values(hour_of_day=1.5), id="a fraction in an integer field"),
        pytest.param(values(amount=_ABSENT), id="a required field absent"),
        pytest.param(values(amount=None), id="a required field null"),
        pytest.param(values(transaction_id=None), id="a null key"),
        pytest.param(values(amount="12.5"), id="a number written as text"),
        pytest.param([*values(), None], id="a tombstone"),
        pytest.param([*values(), b"{not json"], id="broken JSON"),
    ],
)
def test_the_fast_path_steps_aside_for_what_only_the_per_record_rules_decide(demo_params, messages):
    fast, _, _ = both_paths(messages, demo_params)

    assert fast is None


@pytest.mark.parametrize(
    ("folder", "targets"),
    [
        ("support-tickets", ["billing", "refund", "outage", "billing"]),
        ("support-tickets", [2, 3, 7, 2]),
        ("delivery-times", [31.5, 12, 7.25, 0]),
    ],
)
def test_other_tasks_targets_take_the_fast_path_with_the_same_rows(folder, targets):
    params = load_params(ROOT / "examples" / folder / "params.yaml")
    schema = params.schema
    features = {c.name: (2 if c.type in ("int", "float") else "web") for c in schema.columns}
    messages = [
        json.dumps(
            {schema.key: f"k{i}", schema.event_time: "2025-12-01T00:00:00Z", **features, schema.target: t}
        ).encode()
        for i, t in enumerate(targets)
    ]
    fast, reference, quarantined = both_paths(messages, params)

    assert quarantined == 0
    assert fast is not None and fast.equals(reference, check_metadata=True)


def test_a_part_of_fast_and_per_record_batches_reads_back_with_one_schema(tmp_path, demo_params):
    lake = Lake(str(tmp_path / "lake"))
    target = ChunkTarget(
        lake.root,
        lake.partition("landing", "r", "kafka"),
        lake.partition("quarantine", "r", "kafka"),
        demo_params.schema,
        demo_params.ingest,
        NOW,
    )
    builder = ChunkBuilder(target)
    builder.add(segments(values(4, customer_age=None)))  # clean: typed in Arrow
    builder.add(segments([*values(4), b"{not json"]))  # one bad message: the per-record rules
    summary = builder.land(0)

    assert (summary.consumed, summary.landed, summary.quarantined) == (9, 8, 1)
    assert summary.min_event_time == "2026-05-01T10:00:00+00:00"
    with lake.fs.open(f"{target.landing}/{summary.part}", "rb") as fh:
        part = pq.read_table(fh)
        fh.seek(0)
        row_group = pq.ParquetFile(fh).metadata.row_group(0)
    encodings = {
        row_group.column(i).path_in_schema: row_group.column(i).encodings for i in range(part.num_columns)
    }
    assert "RLE_DICTIONARY" in encodings["merchant_category"]  # few distinct values: a dictionary
    assert "RLE_DICTIONARY" not in encodings["transaction_id"]  # unique keys: none built to be dropped
    assert part.schema.equals(
        landing_schema(demo_params.schema, demo_params.ingest, NOW), check_metadata=True
    )
    frame = lake.read_partition(target.landing)
    assert str(frame["hour_of_day"].dtype) == "Int64" and frame["customer_age"].isna().sum() == 2
    assert frame["_origin"].tolist()[:2] == ["events:0:0", "events:0:1"]


PERTURBATIONS = [
    {},
    {"customer_age": None},
    {"customer_age": _ABSENT},
    {"customer_age": ""},
    {"amount": 7},
    {"amount": "7"},
    {"amount": None},
    {"amount": 2**60},
    {"hour_of_day": 3.0},
    {"hour_of_day": -(2**62)},
    {"is_fraud": 1},
    {"is_fraud": 2},
    {"is_fraud": False},
    {"transaction_id": 12},
    {"transaction_id": ""},
    {"merchant_category": ""},
    {"merchant_category": 3},
    {"event_time": "2026-05-01T10:00:00.5+01:00"},
    {"event_time": "2026-05-01"},
    {"event_time": "2099-01-01T00:00:00Z"},
    {"event_time": 1_777_000_000_000},
]


def test_on_random_batches_the_fast_path_is_the_reference_or_steps_aside(demo_params):
    import random

    rng = random.Random(7)
    took_fast_path = 0
    for batch in range(150):
        shared = PERTURBATIONS[batch % len(PERTURBATIONS)]
        messages = []
        for i in range(rng.randint(1, 12)):
            record = {**GOOD, "transaction_id": f"k{i}"}
            record.update(shared if rng.random() < 0.85 else rng.choice(PERTURBATIONS))
            messages.append(json.dumps({k: v for k, v in record.items() if v is not _ABSENT}).encode())
        fast, reference, quarantined = both_paths(messages, demo_params)
        if fast is not None:
            took_fast_path += 1
            assert quarantined == 0, messages
            assert fast.equals(reference, check_metadata=True), messages

    assert took_fast_path >= 20  # the comparison above ran on enough batches to mean something
