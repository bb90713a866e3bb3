"""Landing: every record landed or quarantined; message chunks as numbered parts, inline or in a worker."""

from __future__ import annotations

import json
import os
import signal

import pandas as pd
import pytest

from pipelines.common.lake import Lake
from pipelines.ingest import kafka
from pipelines.ingest.kafka import ChunkTarget, Lander, land_chunk
from pipelines.ingest.kafka_clients import Segment
from pipelines.ingest.landing import IngestError, check_counts

NOW = pd.Timestamp("2026-06-01T00:00:00Z")


def message(key: str) -> bytes:
    return json.dumps(
        {
            "transaction_id": key,
            "event_time": "2026-05-01T10:00:00Z",
            "amount": 1.0,
            "merchant_category": "fuel",
            "country": "US",
            "device": "pos",
            "hour_of_day": 1,
            "customer_age": 30,
            "account_tenure_days": 3,
            "is_fraud": 0,
        }
    ).encode()


def chunk(n: int, start: int, bad_every: int = 0) -> list[Segment]:
    values = [b"junk" if bad_every and i % bad_every == 0 else message(f"k{start + i}") for i in range(n)]
    return [Segment("t", 0, list(range(start, start + n)), [None] * n, values)]


@pytest.fixture
def target(tmp_path, demo_params) -> ChunkTarget:
    lake = Lake(str(tmp_path / "lake"))
    return ChunkTarget(
        lake.root,
        lake.partition("landing", "r", "kafka"),
        lake.partition("quarantine", "r", "kafka"),
        demo_params.schema,
        demo_params.ingest,
        NOW,
    )


def test_a_chunk_becomes_one_parquet_part_and_one_quarantine_part(target):
    summary = land_chunk(target, 3, chunk(100, 0, bad_every=10))

    assert (summary.consumed, summary.landed, summary.quarantined) == (100, 90, 10)
    assert summary.part == "part-00003.parquet" and summary.quarantine_part == "part-00003.jsonl"
    assert summary.by_partition == {"t:0": [100, 10]}
    lake = Lake(target.lake_root)
    assert len(lake.read_partition(target.landing)) == 90
    assert not lake.fs.exists(f"{target.landing}/part-00003.parquet.tmp")


def test_a_chunk_of_only_bad_messages_writes_no_parquet_part(target):
    summary = land_chunk(target, 0, chunk(5, 0, bad_every=1))
    assert summary.part is None and summary.quarantined == 5


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_the_lander_keeps_chunk_order_inline_and_in_its_workers(target, workers):
    with Lander(target, workers) as lander:
        for i in range(5):
            lander.submit(chunk(200, 200 * i))
        summaries = lander.finish()

    assert [s.index for s in summaries] == [0, 1, 2, 3, 4]
    frame = Lake(target.lake_root).read_partition(target.landing)
    assert list(frame["transaction_id"]) == [f"k{i}" for i in range(1000)]


def test_a_failing_chunk_in_the_worker_fails_the_run(target):
    broken = [Segment("t", 0, [0, 1], [None], [b"junk", b"junk"])]  # fewer keys than offsets: a bug
    with Lander(target, 1) as lander, pytest.raises(IndexError):
        lander.submit(broken)
        lander.finish()


def test_a_batch_larger_than_a_slot_of_the_shared_ring_goes_through_the_pipe(target, monkeypatch):
    monkeypatch.setattr(kafka, "SLOT_BYTES", 4096)  # a 200-message batch pickles to about 50 kB
    with Lander(target, 1) as lander:
        lander.submit(chunk(200, 0))
        lander.submit(chunk(3, 200))  # small enough for a slot
        summaries = lander.finish()

    assert [(s.index, s.landed) for s in summaries] == [(0, 200), (1, 3)]
    frame = Lake(target.lake_root).read_partition(target.landing)
    assert list(frame["transaction_id"]) == [f"k{i}" for i in range(203)]


def test_a_worker_that_died_fails_the_run_and_says_so(target):
    with Lander(target, 1) as lander:
        child = lander._children[0]
        os.kill(child.process.pid, signal.SIGKILL)
        child.process.join()
        with pytest.raises(IngestError, match=r"decode-and-land child \(pid \d+\) died \(exit status -9\)"):
            lander.submit(chunk(10, 0))
            lander.finish()


def test_durable_write_replaces_a_file_whole(tmp_path):
    lake = Lake(str(tmp_path))
    lake.write_bytes(f"{tmp_path}/a/b.json", b"one")
    lake.write_bytes(f"{tmp_path}/a/b.json", b"two")
    assert (tmp_path / "a" / "b.json").read_bytes() == b"two"
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["b.json"]


def test_counts_that_do_not_add_up_are_refused():
    check_counts(3, 2, 1)
    with pytest.raises(IngestError, match="consumed 3 records but landed 2 \\+ quarantined 0"):
        check_counts(3, 2, 0)


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_batches_decoded_as_they_come_land_as_one_part_per_chunk(target, workers):
    with Lander(target, workers) as lander:
        for i in range(3):
            lander.add(chunk(100, 100 * i, bad_every=50))
        lander.land()
        lander.add(chunk(100, 300))
        lander.land()
        summaries = lander.finish()

    assert [(s.index, s.consumed, s.landed, s.quarantined) for s in summaries] == [
        (0, 300, 294, 6),
        (1, 100, 100, 0),
    ]
    assert summaries[0].by_partition == {"t:0": [300, 6]}
    assert summaries[0].part == "part-00000.parquet" and summaries[0].quarantine_part == "part-00000.jsonl"
    frame = Lake(target.lake_root).read_partition(target.landing)
    assert len(frame) == 394 and frame["transaction_id"].is_unique
