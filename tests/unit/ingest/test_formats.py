"""File formats: which names are read, and one file's bytes into typed rows and quarantined records."""

from __future__ import annotations

import gzip
import hashlib
import io
import json

import pandas as pd
import pytest

from pipelines.common.config import load_params
from pipelines.ingest.formats import UnreadableFile, hidden, read_file, read_stream, relative_path, suffixes
from tests.support.install import ROOT

PARAMS = load_params(ROOT / "params.yaml")
NOW = pd.Timestamp("2026-06-01T00:00:00Z")
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


def read(data: bytes, name: str):
    sha = hashlib.sha256(data).hexdigest()
    return read_file(data, f"/in/{name}", name, PARAMS.schema, PARAMS.ingest, NOW, sha)


@pytest.mark.parametrize(
    ("formats", "expected"),
    [
        (("parquet",), (".parquet",)),
        (("csv",), (".csv", ".csv.gz")),
        (("jsonl",), (".jsonl", ".json", ".ndjson", ".jsonl.gz", ".json.gz", ".ndjson.gz")),
    ],
)
def test_suffixes_of_the_configured_formats(formats, expected):
    assert suffixes(formats) == expected


@pytest.mark.parametrize(
    ("path", "root", "relative", "is_hidden"),
    [
        ("bucket/in/a/b.jsonl", "bucket/in/", "a/b.jsonl", False),
        ("bucket/in/_tmp/b.jsonl", "bucket/in", "_tmp/b.jsonl", True),
        ("bucket/in/.b.jsonl.swp", "bucket/in", ".b.jsonl.swp", True),
        ("elsewhere/c.csv", "bucket/in", "c.csv", False),
    ],
)
def test_relative_paths_and_hidden_names(path, root, relative, is_hidden):
    assert relative_path(path, root) == relative
    assert hidden(relative) is is_hidden


def test_a_corrupt_gzip_file_is_one_quarantined_record():
    result = read(b"\x1f\x8b not really gzip", "broken.jsonl.gz")

    assert result.consumed == 1 and result.landed.empty
    (entry,) = result.quarantined
    assert entry["origin"] == "broken.jsonl.gz" and entry["reason"].startswith("unreadable gzip file")


def test_a_json_document_lands_its_objects_and_quarantines_the_rest():
    items = [GOOD, ["not", "an", "object"], {**GOOD, "transaction_id": "t-3"}]
    result = read(gzip.compress(json.dumps(items).encode()), "batch.json.gz")

    assert result.landed["transaction_id"].tolist() == ["t-1", "t-3"]
    assert result.landed["_origin"].tolist() == ["batch.json.gz:1", "batch.json.gz:3"]
    (entry,) = result.quarantined
    assert entry["origin"] == "batch.json.gz:2" and entry["reason"] == "not a JSON object: got array"
    assert result.entry()["consumed"] == 3 and result.entry()["path"] == "/in/batch.json.gz"


# -- streamed in batches: the same rows and reasons as the whole file ----------------------------


def _jsonl() -> bytes:
    lines = [json.dumps({**GOOD, "transaction_id": f"t-{i}"}) for i in range(10)]
    lines[3] = "{not json"
    lines[6] = json.dumps({**GOOD, "amount": "x"})
    return ("\ufeff" + "\n".join(lines[:5]) + "\n\n" + "\n".join(lines[5:]) + "\n").encode()


def _csv() -> bytes:
    header = ",".join(GOOD)
    rows = [",".join(str(v) for v in {**GOOD, "transaction_id": f"t-{i}"}.values()) for i in range(8)]
    rows[2] = rows[2].replace("grocery", '"gro\ncery"')  # a quoted field over two lines
    rows[5] = "t-5,only,three"
    return ("\n".join([header, *rows]) + "\n").encode()


def _parquet(rows: int) -> bytes:
    frame = pd.DataFrame([{**GOOD, "transaction_id": f"t-{i}"} for i in range(rows)])
    frame.loc[1, "amount"] = float("inf")
    out = io.BytesIO()
    frame.to_parquet(out, row_group_size=4)
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("a.jsonl", _jsonl()),
        ("a.jsonl.gz", gzip.compress(_jsonl())),
        (
            "crlf.jsonl",
            b"".join(json.dumps({**GOOD, "transaction_id": f"t-{i}"}).encode() + b"\r\n" for i in range(7)),
        ),
        ("typed.jsonl", b"\n".join(json.dumps({**GOOD, "is_fraud": i % 3}).encode() for i in range(7))),
        ("a.csv", _csv()),
        ("a.csv.gz", gzip.compress(_csv())),
        ("a.parquet", _parquet(10)),
        ("empty.parquet", _parquet(0)),
        ("a.json", json.dumps([GOOD, [1], {**GOOD, "is_fraud": 3}]).encode()),
        ("empty.jsonl", b""),
        ("empty.csv", b""),
    ],
)
@pytest.mark.parametrize("batch_rows", [1, 3, 1000])
def test_a_streamed_file_gives_the_rows_and_reasons_of_the_whole_file(name, data, batch_rows):
    whole = read(data, name)
    batches = list(read_stream(io.BytesIO(data), name, PARAMS.schema, PARAMS.ingest, NOW, batch_rows))
    landed = pd.concat([b[0] for b in batches], ignore_index=True)
    pd.testing.assert_frame_equal(landed, whole.landed.reset_index(drop=True), check_index_type=False)
    assert [q for b in batches for q in b[1]] == whole.quarantined
    if batch_rows == 1 and whole.consumed > 2 and not name.endswith(".json"):  # a JSON array: whole
        assert len(batches) > 2


@pytest.mark.parametrize("name", ["a.jsonl.gz", "a.csv.gz", "a.parquet"])
def test_a_corrupt_streamed_file_is_unreadable(name):
    data = gzip.compress(_jsonl() * 50)[:-40] if name.endswith(".gz") else _parquet(10)[:-30]
    with pytest.raises(UnreadableFile):
        list(read_stream(io.BytesIO(data), name, PARAMS.schema, PARAMS.ingest, NOW, 3))
