"""kill -9 the ingestion process at random points while it drains a backlog, many times, then let it finish.

Against both brokers, with both clients (``ingest.kafka.client``; confluent-kafka with two decode-and-land
children, ``ingest.kafka.workers: 2``): every produced event ends up exactly
once in the validated tier, every offset of every partition is landed or quarantined, and
``consumed == landed + quarantined`` in every manifest. Some restarts reuse the killed run's id (an
Airflow retry), others take a new one (the next scheduled run).
"""

from __future__ import annotations

import glob
import json
import os
import random
import subprocess
import time

import pandas as pd
import pytest
import yaml

from tests.support.sources import (
    end_offsets,
    ingest_process,
    kafka_install,
    last_json,
    unique_topic,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MESSAGES = 50_000
# kills per client: kafka-python, the default, takes the most; confluent-kafka runs the same kill points
# (every kind of point is still reached) in fewer rounds, to keep the tier's time
KILLS = {"kafka-python": 9, "confluent-kafka": 6}
# decode-and-land children per client, as docs/sources.md advises: kills land in either child's chunks too
WORKERS = {"kafka-python": 1, "confluent-kafka": 2}


def test_kill_9_at_random_points_loses_nothing_and_duplicates_nothing(
    broker, kafka_client, tmp_path, request
):
    from pipelines.demo import publish

    topic = unique_topic(request, "noloss")
    sent = publish.to_kafka(topic, broker.endpoint(), rows=MESSAGES, seed=31, malformed_fraction=0.01)
    install = kafka_install(
        tmp_path,
        topic,
        max_records=12_000,
        chunk_rows=3000,
        poll_records=1000,
        idle_timeout_s=30,
        client=kafka_client,
        workers=WORKERS[kafka_client],
    )
    rng = random.Random(7)

    rounds = KILLS[kafka_client]
    kills, finished, run_id, points = 0, 0, "run-0", []
    for attempt in range(3 * rounds):
        if kills >= rounds:
            break
        run_id = run_id if rng.random() < 0.4 else f"run-{attempt + 1}"  # a retry, or the next run
        point = KILL_POINTS[attempt % len(KILL_POINTS)]
        proc = ingest_process(install, broker, run_id)
        if kill_at(proc, point, install.lake().partition("landing", run_id, "kafka"), rng):
            kills += 1
            points.append(point)
        else:
            assert proc.returncode == 0, proc.stderr.read()[-3000:]
            finished += 1
        proc.communicate()
    assert kills >= rounds and {"time", "parts", "manifest"} <= set(points)

    unbounded = yaml.safe_load(install.params_path.read_text())
    unbounded["ingest"]["kafka"]["max_records"] = None
    install.params_path.write_text(yaml.safe_dump(unbounded))
    drain_to_the_end(install, broker)  # then let it finish

    print(f"{kafka_client}: {kills} kills at {points}, {finished} runs finished before their kill")
    check_nothing_lost_nothing_twice(install, broker, topic, MESSAGES - sent["malformed"])


def test_kill_9_of_readers_in_parallel_loses_nothing_and_duplicates_nothing(broker, tmp_path, request):
    """The same with ``readers: 2``, whose runs drain to the end offsets: a batch arrives, a run is killed."""
    from pipelines.demo import publish

    topic = unique_topic(request, "noloss-readers")
    install = kafka_install(tmp_path, topic, chunk_rows=2000, poll_records=1000, idle_timeout_s=30, readers=2)
    rng = random.Random(11)
    good, kills = 0, 0
    for attempt in range(6):
        sent = publish.to_kafka(
            topic, broker.endpoint(), rows=8000, seed=40 + attempt, malformed_fraction=0.01
        )
        good += 8000 - sent["malformed"]
        run_id = f"run-{attempt}" if attempt % 3 else "run-retried"  # some restarts retry a killed run
        proc = ingest_process(install, broker, run_id)
        point = KILL_POINTS[attempt % len(KILL_POINTS)]
        kills += kill_at(proc, point, install.lake().partition("landing", run_id, "kafka"), rng)
        proc.communicate()
    assert kills >= 3
    drain_to_the_end(install, broker)
    check_nothing_lost_nothing_twice(install, broker, topic, good)


def drain_to_the_end(install, broker) -> None:
    """Run ingestion until a run finds nothing new."""
    for last in range(10):
        proc = ingest_process(install, broker, f"final-{last}")
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
        if last_json(out)["consumed"] == 0:
            return
    pytest.fail("the backlog never drained")


def check_nothing_lost_nothing_twice(install, broker, topic: str, good: int) -> None:
    """Every offset of every partition landed or quarantined; every good event validated exactly once."""
    from pipelines.validate import stage as validate

    assert validate.run(install.params(), install.settings())["verdict"] == "pass"
    lake = install.lake()
    landed, quarantined = check_every_partition_adds_up(lake)
    offsets = set(landed["_origin"]) | {q["origin"] for q in quarantined}
    expected = {f"{topic}:{p}:{o}" for p, end in end_offsets(broker, topic).items() for o in range(end)}
    assert offsets == expected, lost_report(lake, expected - offsets, offsets - expected)  # nothing lost
    validated = pd.concat([lake.read_partition(p) for p in lake.complete_partitions("validated")])
    assert validated["transaction_id"].is_unique  # nothing twice
    assert len(validated) == good == landed["transaction_id"].nunique()  # every good event once


def lost_report(lake, missing: set[str], unexpected: set[str]) -> str:
    """What a failed no-loss check needs to be understood: the offsets missing per partition, as ranges,
    and the offset ranges each complete landing partition's manifest records."""
    by_partition: dict[str, list[int]] = {}
    for origin in missing:
        topic_partition, offset = origin.rsplit(":", 1)
        by_partition.setdefault(topic_partition, []).append(int(offset))
    lines = [f"{len(missing)} offsets missing, {len(unexpected)} unexpected"]
    for topic_partition, found in sorted(by_partition.items()):
        ranges: list[list[int]] = []
        for offset in sorted(found):
            if ranges and offset == ranges[-1][1] + 1:
                ranges[-1][1] = offset
            else:
                ranges.append([offset, offset])
        lines.append(f"missing {topic_partition}: {', '.join(f'{a}-{b}' for a, b in ranges)}")
    for partition in lake.complete_partitions("landing", "kafka"):
        manifest = lake.read_json(f"{partition}/_manifest.json")
        spans = [f"p{o['partition']} {o['first']}-{o['last']} ({o['consumed']})" for o in manifest["offsets"]]
        lines.append(f"{partition.rsplit('/', 1)[-1]}: {'; '.join(spans)}")
    return "\n".join(lines)


KILL_POINTS = ("time", "parts", "manifest", "time", "parts")


def kill_at(proc: subprocess.Popen, point: str, landing: str, rng: random.Random) -> bool:
    """SIGKILL the process at a random time, after its n-th part, or as soon as its manifest exists
    (before or while it commits); False when it finished first."""
    started = time.monotonic()
    delay, parts = rng.uniform(0.3, 3.5), rng.randint(1, 3)
    while proc.poll() is None:
        if point == "time":
            reached = time.monotonic() - started >= delay
        elif point == "parts":
            reached = len(glob.glob(f"{landing}/part-*.parquet")) >= parts
        else:
            reached = os.path.exists(f"{landing}/_manifest.json")
        if reached:
            proc.kill()  # SIGKILL: no cleanup of any kind
            proc.wait()
            return True
        time.sleep(0.002)
    return False


def check_every_partition_adds_up(lake) -> tuple[pd.DataFrame, list[dict]]:
    """Every complete landing partition: manifest counts == data (consumed == landed + quarantined)."""
    frames, entries = [], []
    for partition in lake.complete_partitions("landing", "kafka"):
        manifest = lake.read_json(f"{partition}/_manifest.json")
        counts = manifest["counts"]
        assert counts["consumed"] == counts["landed"] + counts["quarantined"]
        frame = lake.read_partition(partition)
        assert len(frame) == counts["landed"]
        quarantine = partition.replace("/landing/", "/quarantine/")
        lines = (
            [
                json.loads(line)
                for part in lake.part_files(quarantine, ".jsonl")
                for line in lake.fs.cat_file(part).decode().splitlines()
            ]
            if counts["quarantined"]
            else []
        )
        assert len(lines) == counts["quarantined"]
        frames.append(frame)
        entries += lines
    return pd.concat(frames), entries
