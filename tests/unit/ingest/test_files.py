"""The files source: new/changed files only, typed landing, quarantine with reasons, idempotent retries."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.common.config import load_params, parse_params, read_params_dict
from pipelines.common.lake import MANIFEST, Lake
from pipelines.common.settings import Settings
from pipelines.demo import generator as produce
from pipelines.ingest import files as ingest
from pipelines.ingest.landing import IngestError
from tests.support.install import ROOT

PARAMS_PATH = ROOT / "params.yaml"
PARAMS = load_params(PARAMS_PATH)
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
HEADER = ",".join(GOOD)
CSV_GOOD = "t-{},2024-05-01T10:00:00Z,12.5,grocery,US,web,10,30,100,0"


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings.from_env({"FLYWHEEL_HOME": str(tmp_path / "home")})


@pytest.fixture
def events(tmp_path) -> Path:
    folder = tmp_path / "events"
    folder.mkdir()
    return folder


def lake_of(settings: Settings) -> Lake:
    return Lake(settings.lake_root(PARAMS))


def run(settings: Settings, folder: Path, run_id: str = "r1", params=PARAMS) -> dict:
    return ingest.run(params, settings, run_id, path=str(folder))


def line(i: int, **changes) -> bytes:
    return json.dumps({**GOOD, "transaction_id": f"t-{i}", **changes}).encode()


def quarantined(summary: dict) -> list[dict]:
    path = Path(summary["quarantine_partition"]) / "quarantine.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()]


def landed(summary: dict) -> pd.DataFrame:
    return pd.read_parquet(Path(summary["landing_partition"]) / "part-00000.parquet")


# -- one malformed record between good ones, per kind ----------------------------------------

JSONL_BAD = [
    ("not JSON", b"this is not json", "not JSON: Expecting value (column 1)"),
    ("truncated line", line(2)[:40], "not JSON: Expecting value (column 41)"),
    ("JSON array", b'["t-2", 12.5]', "not a JSON object: got array"),
    ("JSON string", b'"t-2"', "not a JSON object: got string"),
    (
        "not UTF-8",
        line(2).replace(b"grocery", b"gr\xffcery"),
        f"not UTF-8: invalid byte 0xff at byte {line(2).index(b'grocery') + 3}",
    ),
    (
        "oversized",
        line(2, note="x" * 70_000),
        f"oversized record: {len(line(2, note='x' * 70_000))} bytes > max_record_bytes 65536",
    ),
    ("wrong type", line(2, amount="abc"), "field 'amount' = 'abc': expected a number"),
    ("boolean number", line(2, amount=True), "field 'amount' = True: expected a number"),
    (
        "missing field",
        json.dumps({k: v for k, v in GOOD.items() if k != "amount"}).encode(),
        "missing required field 'amount'",
    ),
    ("NaN", line(2).replace(b"12.5", b"NaN"), "field 'amount' = nan: expected a finite number"),
    ("Infinity", line(2).replace(b"12.5", b"Infinity"), "field 'amount' = inf: expected a finite number"),
    (
        "unparseable time",
        line(2, event_time="yesterday"),
        "field 'event_time' = 'yesterday': expected an ISO-8601 time or epoch seconds/ms",
    ),
    (
        "year 1970",
        line(2, event_time="1970-01-01T00:00:00Z"),
        "field 'event_time' = '1970-01-01T00:00:00Z': outside [2000-01-01T00:00:00Z, now + 60 min]",
    ),
    (
        "year 2200",
        line(2, event_time="2200-01-01T00:00:00Z"),
        "field 'event_time' = '2200-01-01T00:00:00Z': outside [2000-01-01T00:00:00Z, now + 60 min]",
    ),
    ("null key", line(2, transaction_id=None), "null key 'transaction_id'"),
    ("fractional int", line(2, hour_of_day=3.5), "field 'hour_of_day' = 3.5: expected an integer"),
    ("numeric category", line(2, device=7), "field 'device' = 7: expected a string category"),
    ("bad label", line(2, is_fraud=2), "field 'is_fraud' = 2: expected 0/1 or true/false"),
]


@pytest.mark.parametrize(("kind", "bad", "reason"), JSONL_BAD, ids=[k for k, _, _ in JSONL_BAD])
def test_malformed_jsonl_record_is_quarantined_and_its_neighbours_land(settings, events, kind, bad, reason):
    (events / "batch.jsonl").write_bytes(b"\n".join([line(1), bad, line(3)]) + b"\n")
    summary = run(settings, events)
    assert (summary["consumed"], summary["landed"], summary["quarantined"]) == (3, 2, 1)
    [entry] = quarantined(summary)
    assert entry["reason"] == reason
    assert entry["origin"] == "batch.jsonl:2"
    assert entry["raw"] == bad.decode("utf-8", "backslashreplace")
    assert landed(summary)["_origin"].tolist() == ["batch.jsonl:1", "batch.jsonl:3"]


CSV_BAD = [
    ("too many fields", CSV_GOOD.format(2) + ",extra", "malformed CSV line: expected 10 fields, got 11"),
    ("truncated line", CSV_GOOD.format(2)[:30], "malformed CSV line: expected 10 fields, got 4"),
    ("wrong type", CSV_GOOD.format(2).replace("12.5", "abc"), "field 'amount' = 'abc': expected a number"),
    ("empty required", CSV_GOOD.format(2).replace("12.5", ""), "missing required field 'amount'"),
    ("empty key", CSV_GOOD.format(2).replace("t-2", ""), "null key 'transaction_id'"),
    ("inf", CSV_GOOD.format(2).replace("12.5", "inf"), "field 'amount' = 'inf': expected a finite number"),
    (
        "unparseable time",
        CSV_GOOD.format(2).replace("2024-05-01T10:00:00Z", "soon"),
        "field 'event_time' = 'soon': expected an ISO-8601 time or epoch seconds/ms",
    ),
    (
        "year 2200",
        CSV_GOOD.format(2).replace("2024", "2200"),
        "field 'event_time' = '2200-05-01T10:00:00Z': outside [2000-01-01T00:00:00Z, now + 60 min]",
    ),
    (
        "fractional int",
        CSV_GOOD.format(2).replace(",10,30,", ",10.5,30,"),
        "field 'hour_of_day' = '10.5': expected an integer",
    ),
    ("bad label", CSV_GOOD.format(2)[:-1] + "yes", "field 'is_fraud' = 'yes': expected 0/1 or true/false"),
]


@pytest.mark.parametrize(("kind", "bad", "reason"), CSV_BAD, ids=[k for k, _, _ in CSV_BAD])
def test_malformed_csv_row_is_quarantined_and_its_neighbours_land(settings, events, kind, bad, reason):
    (events / "batch.csv").write_text("\n".join([HEADER, CSV_GOOD.format(1), bad, CSV_GOOD.format(3)]) + "\n")
    summary = run(settings, events)
    assert (summary["consumed"], summary["landed"], summary["quarantined"]) == (3, 2, 1)
    [entry] = quarantined(summary)
    assert (entry["reason"], entry["origin"], entry["raw"]) == (reason, "batch.csv:3", bad)
    assert landed(summary)["_origin"].tolist() == ["batch.csv:2", "batch.csv:4"]


def test_csv_with_non_utf8_bytes_and_quoted_newlines(settings, events):
    rows = [
        HEADER,
        CSV_GOOD.format(1),
        CSV_GOOD.format(2).replace("grocery", "gr\udcffcery"),
        CSV_GOOD.format(3).replace("t-3", '"t-3\nsecond line"'),
        CSV_GOOD.format(4),
        "",
    ]
    (events / "b.csv").write_bytes("\n".join(rows).encode("utf-8", "surrogateescape"))
    summary = run(settings, events)
    [entry] = quarantined(summary)
    assert entry["reason"] == "not UTF-8: invalid byte 0xff" and entry["origin"] == "b.csv:3"
    frame = landed(summary)
    assert frame["_origin"].tolist() == ["b.csv:2", "b.csv:4", "b.csv:6"]
    assert frame["transaction_id"].tolist()[1] == "t-3\nsecond line"


# -- what lands, and how --------------------------------------------------------------------


def test_what_lands_is_exactly_what_was_produced(settings, events):
    produce.produce(str(events), rows=500, seed=9, files=2, fmt="jsonl")
    frame = landed(run(settings, events)).drop(columns="_origin")
    pd.testing.assert_frame_equal(frame, produce.generate(500, seed=9))


def test_landed_frame_has_the_documented_dtypes(settings, events):
    produce.produce(str(events), rows=200, seed=1)
    frame = lake_of(settings).read_frame(f"{run(settings, events)['landing_partition']}/part-00000.parquet")
    assert {c: str(t) for c, t in frame.dtypes.items()} == {
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
        "_origin": "object",
    }
    assert frame["customer_age"].isna().any()  # optional, ~2% absent


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_every_record_is_landed_or_quarantined(settings, events, fmt):
    made = produce.produce(str(events), rows=2_000, seed=4, files=3, fmt=fmt, malformed_fraction=0.05)
    summary = run(settings, events)
    assert summary["consumed"] == summary["landed"] + summary["quarantined"] == 2_000
    assert summary["quarantined"] == made["malformed"] == 100
    assert sum(summary["reasons"].values()) == 100
    lake = lake_of(settings)
    manifest = lake.read_json(f"{summary['landing_partition']}/{MANIFEST}")
    assert manifest["counts"] == {"consumed": 2_000, "landed": 1_900, "quarantined": 100}
    assert [f["consumed"] for f in manifest["files"]] == [667, 667, 666]
    assert all(f["consumed"] == f["landed"] + f["quarantined"] for f in manifest["files"])
    assert manifest["min_event_time"] < manifest["max_event_time"]
    assert lake.read_json(f"{summary['quarantine_partition']}/{MANIFEST}")["rows"] == 100
    assert len(quarantined(summary)) == 100


def test_produced_jsonl_malformed_kinds_each_get_their_reason(settings, events):
    produce.produce(str(events), rows=400, seed=2, malformed_fraction=len(produce.MALFORMED_JSONL) / 400)
    reasons = run(settings, events)["reasons"]
    assert set(reasons) == {
        "not JSON",
        "not UTF-8",
        "not a JSON object",
        "oversized record",
        "null key 'transaction_id'",
        "missing required field 'amount'",
        "field 'amount': expected a number",
        "field 'amount': expected a finite number",
        "field 'hour_of_day': expected an integer",
        "field 'device': expected a string category",
        "field 'is_fraud': expected 0/1 or true/false",
        "field 'event_time': expected an ISO-8601 time or epoch seconds/ms",
        "field 'event_time': outside [2000-01-01T00:00:00Z, now + 60 min]",
    }


def test_gzip_json_document_and_parquet_files_are_read(settings, events):
    (events / "a.jsonl.gz").write_bytes(gzip.compress(line(1) + b"\n"))
    (events / "b.csv.gz").write_bytes(gzip.compress(f"{HEADER}\n{CSV_GOOD.format(2)}\n".encode()))
    (events / "c.json").write_text(json.dumps([{**GOOD, "transaction_id": "t-3"}, [1]]))
    pq.write_table(pa.Table.from_pylist([{**GOOD, "transaction_id": "t-4"}]), events / "d.parquet")
    (events / "notes.txt").write_text("ignored")
    (events / ".e.jsonl.tmp").write_bytes(line(5))
    (events / "_SUCCESS").write_text("")
    summary = run(settings, events)
    assert (summary["files_new"], summary["landed"], summary["quarantined"]) == (4, 4, 1)
    assert sorted(landed(summary)["transaction_id"]) == ["t-1", "t-2", "t-3", "t-4"]
    assert quarantined(summary)[0]["origin"] == "c.json:2"


def test_typed_parquet_columns_are_read_as_typed(settings, events):
    table = pa.table(
        {
            "transaction_id": pa.array([1, 2, 3], pa.int64()),
            "event_time": pa.array([pd.Timestamp("2024-05-01T10:00:00Z")] * 3, pa.timestamp("ms", tz="UTC")),
            "amount": pa.array([12.5, None, 3.0]),
            "merchant_category": ["grocery"] * 3,
            "country": ["US"] * 3,
            "device": ["web", "pos", "mobile"],
            "hour_of_day": pa.array([10, 10, 10], pa.int32()),
            "customer_age": pa.array([30, 40, None], pa.int64()),
            "account_tenure_days": [1, 2, 3],
            "is_fraud": [False, True, True],
        }
    )
    pq.write_table(table, events / "typed.parquet")
    summary = run(settings, events)
    frame = landed(summary)
    assert frame["transaction_id"].tolist() == ["1", "3"]
    assert frame["customer_age"].tolist() == [30, pd.NA] and frame["is_fraud"].tolist() == [0, 1]
    assert frame["event_time"].tolist() == [pd.Timestamp("2024-05-01T10:00:00Z")] * 2
    assert quarantined(summary)[0]["reason"] == "missing required field 'amount'"
    assert quarantined(summary)[0]["origin"] == "typed.parquet:2"


def test_corrupt_files_are_quarantined_whole(settings, events):
    (events / "a.jsonl.gz").write_bytes(b"not gzip at all")
    (events / "b.parquet").write_bytes(b"PAR1 broken")
    (events / "c.jsonl").write_bytes(line(1))
    summary = run(settings, events)
    assert (summary["consumed"], summary["landed"], summary["quarantined"]) == (3, 1, 2)
    assert summary["reasons"] == {"unreadable Parquet file": 1, "unreadable gzip file": 1}


def test_configured_formats_limit_what_is_read(settings, events):
    data = read_params_dict(PARAMS_PATH)
    data["ingest"]["files"]["formats"] = ["csv"]
    (events / "a.jsonl").write_bytes(line(1))
    (events / "b.csv").write_text(f"{HEADER}\n{CSV_GOOD.format(2)}\n")
    summary = run(settings, events, params=parse_params(data))
    assert summary["files_new"] == 1 and summary["landed"] == 1


def test_another_schema_lands_through_the_same_rules(settings, events):
    params = parse_params(
        {
            "schema": {
                "name": "sensors",
                "key": "id",
                "event_time": "ts",
                "target": "label",
                "columns": [
                    {"name": "temp", "type": "float"},
                    {"name": "site", "type": "category", "categories": ["n"]},
                ],
            }
        }
    )
    rows = [
        {"id": 1, "ts": 1714557600, "temp": 20.5, "site": "n", "label": True},
        {"id": 2, "ts": 1714557600, "temp": "warm", "site": "n", "label": False},
    ]
    (events / "s.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = run(settings, events, params=params)
    frame = landed(summary)
    assert list(frame.columns) == ["id", "ts", "temp", "site", "label", "_origin"]
    assert frame["id"].tolist() == ["1"] and summary["reasons"] == {"field 'temp': expected a number": 1}


# -- state, retries, errors -----------------------------------------------------------------


def test_second_run_skips_seen_files_and_writes_nothing(settings, events):
    produce.produce(str(events), rows=100, seed=1, files=2)
    first = run(settings, events, "r1")
    second = run(settings, events, "r2")
    assert first["files_new"] == 2 and first["landed"] == 100
    assert second["files_new"] == 0 and second["files_skipped"] == 2
    assert (second["consumed"], second["landing_partition"], second["quarantine_partition"]) == (
        0,
        None,
        None,
    )
    assert "no new or changed files" in second["message"]
    assert not Path(lake_of(settings).partition("landing", "r2", source="files")).exists()
    state = lake_of(settings).read_json(ingest.state_path(lake_of(settings)))
    assert {Path(p).name for p in state["files"]} == {"demo-0.jsonl", "demo-1.jsonl"}


def test_changed_and_new_files_are_read(settings, events):
    produce.produce(str(events), rows=100, seed=1, files=2)
    run(settings, events, "r1")
    produce.produce(str(events), rows=100, seed=2, files=1)  # rewrites demo-0 with other content
    (events / "extra.jsonl").write_bytes(line(1) + b"\n")
    summary = run(settings, events, "r2")
    assert (summary["files_new"], summary["files_skipped"], summary["landed"]) == (2, 1, 101)


def test_unchanged_content_with_a_new_mtime_is_skipped_by_hash(settings, events):
    (events / "a.jsonl").write_bytes(line(1))
    run(settings, events, "r1")
    (events / "a.jsonl").write_bytes(line(1))  # same bytes, new modification time
    assert run(settings, events, "r2")["files_skipped"] == 1


def test_retried_run_rewrites_its_own_partition(settings, events):
    produce.produce(str(events), rows=300, seed=1, malformed_fraction=0.1)
    first = run(settings, events, "scheduled__2024-05-01T00:00:00+00:00")
    again = run(settings, events, "scheduled__2024-05-01T00:00:00+00:00")
    assert again["files_new"] == 1 and again["landing_partition"] == first["landing_partition"]
    assert len(landed(again)) == first["landed"] == 270
    assert len(quarantined(again)) == 30


def test_a_crash_before_the_state_is_saved_is_retried_cleanly(settings, events, monkeypatch):
    produce.produce(str(events), rows=100, seed=1)

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(ingest, "write_state", crash)
    with pytest.raises(OSError):
        run(settings, events, "r1")
    monkeypatch.undo()
    summary = run(settings, events, "r1")
    assert summary["files_new"] == 1 and len(landed(summary)) == 100
    assert run(settings, events, "r2")["files_new"] == 0


def test_missing_source_folder_names_the_path_and_what_was_expected(settings, tmp_path):
    with pytest.raises(IngestError, match=r"source folder .*nowhere does not exist.*expected a folder"):
        run(settings, tmp_path / "nowhere")


def test_relative_configured_path_is_relative_to_the_project(tmp_path):
    settings = Settings.from_env(
        {"FLYWHEEL_HOME": str(tmp_path / "home"), "FLYWHEEL_PARAMS": str(tmp_path / "params.yaml")}
    )
    (tmp_path / "demo" / "events").mkdir(parents=True)
    (tmp_path / "demo" / "events" / "a.jsonl").write_bytes(line(1))
    summary = ingest.run(PARAMS, settings, "r1")
    assert summary["path"] == str(tmp_path / "demo" / "events") and summary["landed"] == 1


def test_fsspec_url_source(settings, tmp_path):
    url = f"memory://{tmp_path.name}/events"
    made = produce.produce(url, rows=50, seed=3)
    assert made["paths"] == [f"memory:///{tmp_path.name}/events/demo-0.jsonl"]
    try:
        assert ingest.run(PARAMS, settings, "r1", path=url)["landed"] == 50
        assert ingest.run(PARAMS, settings, "r2", path=url)["files_skipped"] == 1
    finally:
        fsspec.filesystem("memory").rm(f"/{tmp_path.name}", recursive=True)
