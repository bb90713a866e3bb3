"""The Kafka benchmark's ceiling: the decoding load a bare loop runs beside, and the ratios against it."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from benchmarks.bench_kafka_ingest import ceiling, decode_load


def test_the_decode_load_lands_every_message_it_was_given_in_parts_of_chunk_rows(tmp_path):
    landed = decode_load(60_000, rate=1e9, lake=tmp_path, distinct=2)

    parts = sorted((tmp_path / "landing").glob("part-*.parquet"))
    assert landed == 60_000
    assert [pq.read_metadata(p).num_rows for p in parts] == [50_000, 10_000]  # params.yaml's chunk_rows
    table = pq.read_table(parts[1])
    assert {"transaction_id", "event_time", "is_fraud", "_origin"} <= set(table.column_names)
    assert not list((tmp_path / "quarantine").glob("*"))  # clean demo messages: nothing quarantined


def _run(msgs_per_s: float, cpu_s: float = 5.0) -> dict:
    return {"msgs_per_s": msgs_per_s, "seconds": 1e6 / msgs_per_s, "consumer_cpu_s": cpu_s}


def test_the_ceiling_compares_the_best_loop_beside_decoding_with_the_bare_loop_and_with_flywheel():
    beside = [_run(150_000, 6.0), _run(160_000, 5.8)]

    figures = ceiling(beside, best_flywheel=_run(140_000), best_bare=_run(170_000), messages=1_000_000)

    assert figures["ceiling_ratio"] == pytest.approx(160 / 170)
    assert figures["ratio_to_ceiling"] == pytest.approx(140 / 160)
    assert figures["baseline_beside_decoding"]["msgs_per_s"] == 160_000
    assert figures["baseline_beside_decoding"]["consumer_process_cpu_us_per_msg"] == pytest.approx(5.8)


def test_without_runs_beside_decoding_there_is_no_ceiling():
    assert ceiling([], best_flywheel=_run(1.0), best_bare=_run(1.0), messages=1) == {}
