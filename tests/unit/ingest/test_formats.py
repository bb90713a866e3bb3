"""File formats: which names are read, and one file's bytes into typed rows and quarantined records."""

from __future__ import annotations

import gzip
import hashlib
import json

import pandas as pd
import pytest

from pipelines.common.config import load_params
from pipelines.ingest.formats import hidden, read_file, relative_path, suffixes
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
