"""A corpus of malformed Kafka messages: each is quarantined with the right reason, raw bytes and
topic/partition/offset, and every good message around them lands; on both brokers, with both clients."""

from __future__ import annotations

import base64
import json

import pytest

from tests.support.sources import SESSION_TIMEOUT_MS, make_source_install, unique_topic

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GOOD = {
    "transaction_id": "k",
    "event_time": "2026-01-05T10:00:00.000Z",
    "amount": 12.5,
    "merchant_category": "grocery",
    "country": "US",
    "device": "pos",
    "hour_of_day": 10,
    "customer_age": 41,
    "account_tenure_days": 300,
    "is_fraud": 0,
}


def good(key: str, **changes) -> bytes:
    return json.dumps({**GOOD, "transaction_id": key, **changes}).encode()


def without(key: str, field: str) -> bytes:
    return json.dumps({k: v for k, v in {**GOOD, "transaction_id": key}.items() if k != field}).encode()


def raw(key: str, field: str, literal: str) -> bytes:
    """A record whose ``field`` is the JSON text ``literal`` (NaN, Infinity, 1e400: beyond json.dumps)."""
    text = good(key, **{field: "@@"}).decode()
    return text.replace('"@@"', literal).encode()


# (kind, message value, the reason's expected start)
CORPUS = [
    ("not_json", b"this is not json", "not JSON"),
    ("truncated", good("m-truncated")[:40], "not JSON"),
    ("not_utf8", good("m-not-utf8").replace(b'"grocery"', b'"groc\xe9ry"'), "not UTF-8: invalid byte 0xe9"),
    ("empty", b"", "not JSON"),
    ("whitespace", b"   \n ", "not JSON"),
    ("tombstone", None, "empty message: no value"),
    ("array", b'["m-array", 1, 2]', "not a JSON object: got array"),
    ("string", b'"just a string"', "not a JSON object: got string"),
    ("number", b"42", "not a JSON object: got number"),
    ("null", b"null", "not a JSON object: got null"),
    ("missing_amount", without("m-missing-amount", "amount"), "missing required field 'amount'"),
    ("missing_label", without("m-missing-label", "is_fraud"), "missing required field 'is_fraud'"),
    ("null_key", good("x", transaction_id=None), "null key 'transaction_id'"),
    ("missing_key", without("x", "transaction_id"), "null key 'transaction_id'"),
    (
        "object_key",
        good("x", transaction_id={"id": 1}),
        "field 'transaction_id' = {'id': 1}: expected a string",
    ),
    ("wrong_type", good("m-wrong-type", amount="abc"), "field 'amount' = 'abc': expected a number"),
    ("bool_amount", good("m-bool", amount=True), "field 'amount' = True: expected a number"),
    ("nan", raw("m-nan", "amount", "NaN"), "field 'amount' = nan: expected a finite number"),
    ("infinity", raw("m-inf", "amount", "-Infinity"), "field 'amount' = -inf: expected a finite number"),
    ("overflow", raw("m-overflow", "amount", "1e400"), "field 'amount' = inf: expected a finite number"),
    (
        "bad_time",
        good("m-bad-time", event_time="not-a-timestamp"),
        "field 'event_time' = 'not-a-timestamp': expected",
    ),
    (
        "ancient_time",
        good("m-ancient", event_time="1970-01-01T00:00:00Z"),
        "field 'event_time' = '1970-01-01T00:00:00Z': outside",
    ),
    (
        "future_time",
        good("m-future", event_time="2200-01-01T00:00:00Z"),
        "field 'event_time' = '2200-01-01T00:00:00Z': outside",
    ),
    ("bool_time", good("m-bool-time", event_time=True), "field 'event_time' = True: expected an ISO-8601"),
    ("float_hour", good("m-float-hour", hour_of_day=3.5), "field 'hour_of_day' = 3.5: expected an integer"),
    ("numeric_category", good("m-num-cat", device=7), "field 'device' = 7: expected a string category"),
    ("bad_label", good("m-label", is_fraud=2), "field 'is_fraud' = 2: expected 0/1"),
    ("oversized", good("m-oversized", note="x" * 70_000), "oversized record: "),
    (
        "lone_surrogate",
        good("m-surrogate").replace(b'"grocery"', b'"gro\\ud800cery"'),
        "not UTF-8: a \\u escape",
    ),
    ("control_char", good("m-control").replace(b'"grocery"', b'"gro\tcery"'), "not JSON: Invalid control"),
    ("trailing_garbage", good("m-trailing") + b" xyz", "not JSON: Extra data"),
    ("two_objects", good("m-two-a") + good("m-two-b"), "not JSON: Extra data"),
    ("byte_order_mark", b"\xef\xbb\xbf" + good("m-bom"), "not JSON: Unexpected UTF-8 BOM"),
    ("deep_nesting", b"[" * 20_000 + b"]" * 20_000, "not JSON"),
]


def test_every_malformed_kind_is_quarantined_with_its_reason_and_good_ones_land(
    broker, kafka_client, tmp_path, request
):
    from pipelines.demo import publish
    from pipelines.ingest import kafka

    keys, values, expected = [], [], {}
    for i, (kind, value, reason) in enumerate(CORPUS):
        keys += [f"good-{i}a".encode(), kind.encode(), f"good-{i}b".encode()]
        values += [good(f"good-{i}a"), value, good(f"good-{i}b")]
        expected[3 * i + 1] = (kind, value, reason)
    topic = unique_topic(request)
    publish.send(topic, keys, values, broker.endpoint(), partitions=1)  # one partition: offsets = order
    install = make_source_install(
        tmp_path,
        sources=["kafka"],
        kafka={
            "topics": [topic],
            "group_id": f"g-{topic}",
            "session_timeout_ms": SESSION_TIMEOUT_MS,
            "client": kafka_client,
        },
    )

    summary = kafka.run(install.params(), install.settings(), "corpus", broker.endpoint())
    again = kafka.run(install.params(), install.settings(), "again", broker.endpoint())

    assert len(CORPUS) >= 20
    assert summary["consumed"] == 3 * len(CORPUS) == summary["landed"] + summary["quarantined"]
    assert summary["quarantined"] == len(CORPUS) and summary["landed"] == 2 * len(CORPUS)
    lake = install.lake()
    entries = {
        e["offset"]: e
        for part in lake.part_files(summary["quarantine_partition"], ".jsonl")
        for e in map(json.loads, lake.fs.cat_file(part).decode().splitlines())
    }
    assert set(entries) == set(expected)
    for offset, (kind, value, reason) in expected.items():
        entry = entries[offset]
        assert entry["reason"].startswith(reason), (kind, entry["reason"])
        assert (
            entry["topic"] == topic and entry["partition"] == 0 and entry["origin"] == f"{topic}:0:{offset}"
        )
        assert entry["raw_base64"] == (None if value is None else base64.b64encode(value).decode()), kind
        assert base64.b64decode(entry["key_base64"]) == kind.encode()
    landed = lake.read_partition(summary["landing_partition"])
    assert sorted(landed["transaction_id"]) == sorted(
        f"good-{i}{s}" for i in range(len(CORPUS)) for s in "ab"
    )
    assert set(landed["_origin"]) == {f"{topic}:0:{o}" for o in range(3 * len(CORPUS)) if o not in expected}
    assert summary["committed"] == {f"{topic}:0": 3 * len(CORPUS)}  # past the malformed ones too
    assert again["consumed"] == 0  # committed: nothing is read twice
