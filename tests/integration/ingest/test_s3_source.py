"""The S3 source against a real S3 API (moto's server): new objects by key and ETag, every format, retries."""

from __future__ import annotations

import gzip
import logging
import re
import subprocess

import pandas as pd
import pytest

from tests.support.sources import flywheel_cli, last_json, make_source_install

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def s3_install(tmp_path, url: str):
    return make_source_install(tmp_path, sources=["s3"], s3={"url": url})


def bucket_for(request) -> str:
    return "b-" + "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[-50:].strip("-")


def test_new_objects_of_every_format_land_once_and_changed_ones_again(s3_server, tmp_path, request):
    from pipelines.demo import generator as produce
    from pipelines.ingest import s3
    from pipelines.validate import stage as validate

    url = f"s3://{bucket_for(request)}/events"
    options = s3_server.storage_options()
    for fmt, seed in (("jsonl", 1), ("csv", 2), ("parquet", 3)):
        produce.produce(
            url,
            rows=600,
            seed=seed,
            fmt=fmt,
            batch=f"b{fmt}",
            malformed_fraction=0.02,
            storage_options=options,
        )
    fs = s3_server.filesystem()
    _, lines, _ = produce.messages(300, seed=4, batch="zipped")
    fs.pipe_file(f"{url}/more/zipped.jsonl.gz", gzip.compress(b"\n".join(lines) + b"\n"))
    fs.pipe_file(f"{url}/_staging/ignored.jsonl", b"{}\n")  # hidden folders are not sources
    install = s3_install(tmp_path, url)

    first = s3.run(install.params(), install.settings(), "run-1", s3_server)

    assert first["objects_new"] == 4 and first["consumed"] == 3 * 600 + 300
    assert first["consumed"] == first["landed"] + first["quarantined"] and first["quarantined"] > 0
    lake = install.lake()
    manifest = lake.read_json(f"{first['landing_partition']}/_manifest.json")
    listing = {f"s3://{k}": v for k, v in fs.find(url, detail=True).items()}
    assert {o["key"]: o["etag"] for o in manifest["objects"]} == {
        k: v["ETag"].strip('"') for k, v in listing.items() if "_staging" not in k
    }
    assert len(lake.read_partition(first["landing_partition"])) == first["landed"]
    assert s3.run(install.params(), install.settings(), "run-2", s3_server)["consumed"] == 0

    produce.produce(url, rows=700, seed=1, fmt="jsonl", batch="bjsonl", storage_options=options)  # rewritten
    third = s3.run(install.params(), install.settings(), "run-3", s3_server)
    assert third["objects_new"] == 1 and third["consumed"] == 700 and third["objects_skipped"] == 3

    assert validate.run(install.params(), install.settings())["verdict"] == "pass"
    validated = pd.concat([lake.read_partition(p) for p in lake.complete_partitions("validated")])
    assert validated["transaction_id"].is_unique  # the rewritten file's first 600 keys entered once


def test_a_retry_after_the_manifest_only_remembers_the_objects(s3_server, tmp_path, request, monkeypatch):
    from pipelines.demo import generator as produce
    from pipelines.ingest import s3

    url = f"s3://{bucket_for(request)}/events"
    produce.produce(url, rows=500, seed=5, files=2, storage_options=s3_server.storage_options())
    install = s3_install(tmp_path, url)
    with monkeypatch.context() as patched:
        patched.setattr(s3, "write_state", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("crash")))
        with pytest.raises(RuntimeError):
            s3.run(install.params(), install.settings(), "run-1", s3_server)

    retry = s3.run(install.params(), install.settings(), "run-1", s3_server)

    assert retry["resumed"] is True and retry["consumed"] == 500
    assert s3.run(install.params(), install.settings(), "run-2", s3_server)["consumed"] == 0
    assert len(install.lake().complete_partitions("landing", "s3")) == 1


def test_produce_to_s3_and_ingest_from_the_command_line(s3_server, tmp_path, request):
    url = f"s3://{bucket_for(request)}/cli"
    install = s3_install(tmp_path, url)
    env = install.env(
        AWS_ENDPOINT_URL=s3_server.endpoint_url,
        AWS_ACCESS_KEY_ID="flywheel",
        AWS_SECRET_ACCESS_KEY="flywheel",
        AWS_DEFAULT_REGION="us-east-1",
    )

    produced = subprocess.run(
        flywheel_cli(
            "produce",
            "--to",
            "s3",
            "--rows",
            "800",
            "--files",
            "2",
            "--format",
            "csv",
            "--malformed-fraction",
            "0.01",
            "--json",
        ),
        env=env,
        capture_output=True,
        text=True,
    )
    assert produced.returncode == 0, produced.stderr[-2000:]
    assert last_json(produced.stdout)["paths"] == [f"{url}/demo-0.csv", f"{url}/demo-1.csv"]
    ingested = subprocess.run(flywheel_cli("ingest", "--json"), env=env, capture_output=True, text=True)

    assert ingested.returncode == 0, ingested.stderr[-2000:]
    summary = last_json(ingested.stdout)
    assert (
        summary["sources"] == ["s3"]
        and summary["consumed"] == 800 == summary["landed"] + summary["quarantined"]
    )


def test_objects_read_in_small_batches_land_what_whole_reads_land(s3_server, tmp_path, request, monkeypatch):
    from pipelines.demo import generator as produce
    from pipelines.ingest import s3

    url = f"s3://{bucket_for(request)}/events"
    options = s3_server.storage_options()
    for fmt, seed in (("jsonl", 1), ("csv", 2), ("parquet", 3)):
        produce.produce(url, rows=500, seed=seed, fmt=fmt, malformed_fraction=0.03, storage_options=options)
    _, lines, _ = produce.messages(300, seed=4, batch="zipped")
    s3_server.filesystem().pipe_file(f"{url}/zipped.jsonl.gz", gzip.compress(b"\n".join(lines) + b"\n"))

    def land(batch_rows: int, folder: str):
        monkeypatch.setattr(s3, "BATCH_ROWS", batch_rows)
        (tmp_path / folder).mkdir()
        install = s3_install(tmp_path / folder, url)
        summary = s3.run(install.params(), install.settings(), "run-1", s3_server)
        lake = install.lake()
        quarantined = [
            lake.fs.cat_file(path) for path in lake.part_files(summary["quarantine_partition"], ".jsonl")
        ]
        return summary, lake.read_partition(summary["landing_partition"]), quarantined

    whole, whole_rows, whole_bad = land(1_000_000, "whole")
    small, small_rows, small_bad = land(7, "small")

    assert whole["consumed"] == 3 * 500 + 300 and whole["quarantined"] > 0
    assert {k: small[k] for k in ("consumed", "landed", "quarantined", "reasons")} == {
        k: whole[k] for k in ("consumed", "landed", "quarantined", "reasons")
    }
    pd.testing.assert_frame_equal(small_rows, whole_rows)
    assert small_bad == whole_bad


def test_the_listing_and_the_reading_say_how_far_they_got(s3_server, tmp_path, request, monkeypatch, caplog):
    """Under Airflow (no terminal) each step ends with one progress line: objects, megabytes, rows."""
    from pipelines.common import progress
    from pipelines.demo import generator as produce
    from pipelines.ingest import s3

    monkeypatch.setattr(progress, "interactive", lambda: False)
    caplog.set_level(logging.INFO, logger="flywheel.progress")
    url = f"s3://{bucket_for(request)}/events"
    for fmt, seed in (("jsonl", 1), ("csv", 2), ("parquet", 3)):
        produce.produce(url, rows=400, seed=seed, fmt=fmt, storage_options=s3_server.storage_options())
    install = s3_install(tmp_path, url)

    summary = s3.run(install.params(), install.settings(), "run-1", s3_server)

    listed, read = [r.getMessage() for r in caplog.records if r.name == "flywheel.progress"]
    assert re.fullmatch(rf"s3 objects listed under {re.escape(url)}: 3 object, [\d.]+ s \(done\)", listed)
    manifest = install.lake().read_json(f"{summary['landing_partition']}/_manifest.json")
    megabytes = round(sum(o["size"] for o in manifest["objects"]) / 1e6, 2)
    done = rf"MB={megabytes:.4g}, rows={summary['landed']} \(done\)"
    assert re.fullmatch(rf"s3 objects read: 3/3 object \(100%\), [\d.]+ s, {done}", read), read
