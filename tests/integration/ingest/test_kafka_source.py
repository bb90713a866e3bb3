"""The Kafka source on real brokers: bounded drains in chunks, manifests, commits after writes, retries."""

from __future__ import annotations

import gc
import json

import pandas as pd
import pyarrow as pa
import pytest

from tests.support.sources import end_offsets, ingest_process, kafka_install, unique_topic

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def committed(broker, topic: str, group: str) -> dict[int, int | None]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return {p: consumer.committed(TopicPartition(topic, p)) for p in consumer.partitions_for_topic(topic)}
    finally:
        consumer.close(autocommit=False)


def landed_keys(install) -> pd.Series:
    lake = install.lake()
    frames = [lake.read_partition(p) for p in lake.complete_partitions("landing", "kafka")]
    return pd.concat(frames)["transaction_id"] if frames else pd.Series(dtype=object)


def validated_keys(install) -> pd.Series:
    lake = install.lake()
    frames = [lake.read_partition(p) for p in lake.complete_partitions("validated")]
    return pd.concat(frames)["transaction_id"] if frames else pd.Series(dtype=object)


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_a_backlog_lands_in_chunks_with_a_manifest_and_offsets_are_committed(
    broker, tmp_path, request, workers
):
    from pipelines.demo import publish
    from pipelines.ingest import kafka

    topic = unique_topic(request)
    sent = publish.to_kafka(topic, broker.endpoint(), rows=9000, seed=11, malformed_fraction=0.01)
    install = kafka_install(tmp_path, topic, chunk_rows=2000, poll_records=1000, workers=workers)

    allocator = pa.default_memory_pool().backend_name
    summary = kafka.run(install.params(), install.settings(), "run-1", broker.endpoint())

    assert summary["consumed"] == 9000 == summary["landed"] + summary["quarantined"]
    assert summary["quarantined"] == sent["malformed"] and summary["parts"] >= 4
    lake = install.lake()
    manifest = lake.read_json(f"{summary['landing_partition']}/_manifest.json")
    assert manifest["counts"] == {
        "consumed": 9000,
        "landed": summary["landed"],
        "quarantined": sent["malformed"],
    }
    assert len(lake.read_partition(summary["landing_partition"])) == summary["landed"]
    ends = {o["partition"]: o["next"] for o in manifest["offsets"]}
    assert sum(o["consumed"] for o in manifest["offsets"]) == 9000
    assert committed(broker, topic, f"g-{topic}") == ends
    lines = [
        json.loads(line)
        for part in lake.part_files(summary["quarantine_partition"], ".jsonl")
        for line in lake.fs.cat_file(part).decode().splitlines()
    ]
    assert len(lines) == sent["malformed"]
    assert {"topic", "partition", "offset", "raw", "raw_base64", "reason", "origin"} <= set(lines[0])

    again = kafka.run(install.params(), install.settings(), "run-2", broker.endpoint())
    assert again["consumed"] == 0 and again["landing_partition"] is None  # nothing new: nothing written
    assert gc.get_freeze_count() == 0  # the run's frozen heap is handed back to the collector
    assert pa.default_memory_pool().backend_name == allocator  # the run's allocator choice ends with it


def test_max_records_bounds_a_run_and_the_next_run_continues(broker, tmp_path, request):
    from pipelines.demo import publish
    from pipelines.ingest import kafka

    topic = unique_topic(request)
    publish.to_kafka(topic, broker.endpoint(), rows=5000, seed=12)
    install = kafka_install(tmp_path, topic, max_records=2000, poll_records=500, chunk_rows=1000)

    counts = [
        kafka.run(install.params(), install.settings(), f"run-{i}", broker.endpoint())["consumed"]
        for i in range(4)
    ]

    assert counts == [2000, 2000, 1000, 0]
    keys = landed_keys(install)
    assert len(keys) == 5000 and keys.is_unique


def test_a_crash_between_writing_and_committing_never_duplicates_validated_events(
    broker, tmp_path, request, monkeypatch
):
    from pipelines.demo import publish
    from pipelines.ingest import kafka
    from pipelines.validate import stage as validate

    topic = unique_topic(request)
    publish.to_kafka(topic, broker.endpoint(), rows=3000, seed=13)
    install = kafka_install(tmp_path, topic)

    def crash(*args, **kwargs):
        raise RuntimeError("killed after the manifest, before the commit")

    with monkeypatch.context() as patched:
        patched.setattr(kafka, "commit", crash)
        with pytest.raises(RuntimeError):
            kafka.run(install.params(), install.settings(), "run-1", broker.endpoint())
    assert install.lake().complete_partitions("landing", "kafka")  # the partition stays complete
    assert set(committed(broker, topic, f"g-{topic}").values()) == {None}

    publish.to_kafka(topic, broker.endpoint(), rows=1000, seed=14)  # more arrives meanwhile
    second = kafka.run(install.params(), install.settings(), "run-2", broker.endpoint())
    assert second["consumed"] == 4000  # at least once: run-1's records again, and the new ones

    assert validate.run(install.params(), install.settings())["verdict"] == "pass"
    keys = validated_keys(install)
    assert len(keys) == 4000 and keys.is_unique  # exactly once in the validated tier


def test_a_retry_of_a_complete_run_only_finishes_its_commit(broker, tmp_path, request, monkeypatch):
    from pipelines.demo import publish
    from pipelines.ingest import kafka

    topic = unique_topic(request)
    publish.to_kafka(topic, broker.endpoint(), rows=2000, seed=15)
    install = kafka_install(tmp_path, topic)
    with monkeypatch.context() as patched:
        patched.setattr(kafka, "commit", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("crash")))
        with pytest.raises(RuntimeError):
            kafka.run(install.params(), install.settings(), "run-1", broker.endpoint())
    landing = install.lake().complete_partitions("landing", "kafka")
    before = install.lake().read_json(f"{landing[0]}/_manifest.json")

    retry = kafka.run(install.params(), install.settings(), "run-1", broker.endpoint())

    assert retry["resumed"] is True and retry["consumed"] == 2000
    assert install.lake().read_json(f"{landing[0]}/_manifest.json") == before  # not rewritten
    assert sum(committed(broker, topic, f"g-{topic}").values()) == 2000
    assert kafka.run(install.params(), install.settings(), "run-2", broker.endpoint())["consumed"] == 0


def test_an_interrupted_run_leaves_nothing_visible_and_its_retry_rewrites_it(
    broker, tmp_path, request, monkeypatch
):
    from pipelines.demo import publish
    from pipelines.ingest import kafka

    topic = unique_topic(request)
    publish.to_kafka(topic, broker.endpoint(), rows=4000, seed=16)
    install = kafka_install(tmp_path, topic, chunk_rows=1000, poll_records=500, workers=0)
    real = kafka.write_manifest

    def fail_on_landing(lake, partition, manifest):
        if "/landing/" in partition:
            raise OSError("disk full")
        real(lake, partition, manifest)

    with monkeypatch.context() as patched:
        patched.setattr(kafka, "write_manifest", fail_on_landing)
        with pytest.raises(OSError):
            kafka.run(install.params(), install.settings(), "run-1", broker.endpoint())
    lake = install.lake()
    assert lake.complete_partitions("landing") == [] and lake.complete_partitions("quarantine") == []
    assert not lake.fs.exists(lake.partition("landing", "run-1", "kafka"))  # parts cleaned up too

    retry = kafka.run(install.params(), install.settings(), "run-1", broker.endpoint())
    assert retry["consumed"] == 4000 and not retry["resumed"]
    assert len(landed_keys(install)) == 4000


def test_readers_in_parallel_land_every_record_once_and_commit_after(broker, kafka_client, tmp_path, request):
    from pipelines.demo import publish
    from pipelines.ingest import kafka

    topic = unique_topic(request)
    sent = publish.to_kafka(topic, broker.endpoint(), rows=9000, seed=21, malformed_fraction=0.01)
    install = kafka_install(
        tmp_path, topic, chunk_rows=1500, poll_records=500, readers=2, client=kafka_client
    )

    summary = kafka.run(install.params(), install.settings(), "run-1", broker.endpoint())

    assert summary["consumed"] == 9000 == summary["landed"] + summary["quarantined"]
    assert summary["quarantined"] == sent["malformed"]
    lake = install.lake()
    manifest = lake.read_json(f"{summary['landing_partition']}/_manifest.json")
    assert len(set(manifest["parts"])) == len(manifest["parts"]) >= 6  # the readers' parts never collide
    keys = landed_keys(install)
    assert len(keys) == 9000 - sent["malformed"] and keys.is_unique
    assert sum(o["consumed"] for o in manifest["offsets"]) == 9000
    assert committed(broker, topic, f"g-{topic}") == {o["partition"]: o["next"] for o in manifest["offsets"]}

    publish.to_kafka(topic, broker.endpoint(), rows=1000, seed=22)
    again = kafka.run(install.params(), install.settings(), "run-2", broker.endpoint())
    assert again["consumed"] == 1000  # the next run starts at the committed offsets


def test_members_left_by_killed_runs_do_not_end_the_next_run_early(broker, tmp_path, request):
    """A run killed before it left its group stays a member until its session times out, and a broker
    may hand the next run only some partitions meanwhile (Tansu does, for a member killed while it
    joined): the next run waits for the rest and lands the whole backlog, instead of taking the
    partitions it lacks as drained."""
    import time

    from pipelines.demo import publish
    from pipelines.ingest import kafka

    topic = unique_topic(request, "left")
    publish.to_kafka(topic, broker.endpoint(), rows=30_000, seed=21)
    install = kafka_install(tmp_path, topic, poll_records=1000)
    for n, delay in enumerate((0.4, 0.8, 1.2, 1.6, 2.0, 0.6)):  # killed while they join or drain
        proc = ingest_process(install, broker, f"killed-{n}")
        time.sleep(delay)
        proc.kill()  # SIGKILL: it never leaves the group
        proc.communicate()

    kafka.run(install.params(), install.settings(), "run-1", broker.endpoint())

    keys = landed_keys(install)  # a killed run may have landed (and committed) part of it first
    assert keys.nunique() == 30_000
    group = install.params().ingest.kafka.group_id
    assert committed(broker, topic, group) == end_offsets(broker, topic)
