"""``flywheel stack up|down|status``: the production topology as processes on this machine.

PostgreSQL and Redis (Debian), Kafka and the S3 API (``flywheel services``), an authenticated MLflow
server with the PostgreSQL store and S3 artifacts, ``flywheel metrics-exporter`` scraped by Debian's
Prometheus, and Airflow on the CeleryExecutor: api-server,
scheduler, dag-processor, triggerer and two Celery workers, one on the ``gpu`` queue. Ports are chosen
at the first start and kept in the state folder (:mod:`pipelines.stack.layout`); every process is
recorded by PID and stopped by PID.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil

from pipelines.common.config import Params
from pipelines.common.settings import Settings
from pipelines.demo import services
from pipelines.demo.airflow_runner.processes import descendants, end_processes
from pipelines.demo.services.supervisor import ServiceError, Supervisor, free_port, port_open
from pipelines.stack import layout as layouts
from pipelines.stack import monitoring, parts, system
from pipelines.stack.errors import StackError

START_ORDER = ("postgres", "redis", "mlflow", *monitoring.PARTS, *parts.AIRFLOW_PARTS)
STOP_ORDER = (
    tuple(w for w, _ in parts.WORKERS),
    ("triggerer", "scheduler", "dag-processor"),
    ("api-server",),
    monitoring.PARTS,
    ("mlflow",),
    ("redis",),
    ("postgres",),
)


def supervisor(layout: layouts.Layout) -> Supervisor:
    """The supervisor of the stack's own processes (Kafka and S3 have theirs, under ``services/``)."""
    return Supervisor(layout.state / "processes")


def up(
    state: Path | None = None,
    project: Path | None = None,
    airflow_env: Mapping[str, str] | None = None,
    install: bool = False,
    timeout_s: float = 300.0,
) -> dict[str, Any]:
    """Start every part not running yet, in order, and wait until Airflow is healthy; the stack's status.

    ``airflow_env`` adds configuration to every Airflow process (``AIRFLOW__...`` variables).
    ``install`` apt-get installs PostgreSQL, Redis and Prometheus when missing (as root).
    """
    system.require(install_missing=install)
    project = (project or Path(__file__).resolve().parents[2]).resolve()
    layout = layouts.load(state or layouts.state_dir(), choose_port=free_port)
    layouts.write_params(layout, project / "params.yaml")
    layouts.write_client_env(layout)
    try:
        ports = {name: layout.ports[name] for name in ("kafka", "zookeeper", "s3")}
        services.up(("kafka", "s3"), state=layout.services_state, ports=ports)
    except ServiceError as exc:
        raise StackError(f"the stack's Kafka or S3 API did not start: {exc}") from None
    parts.create_bucket(layout)
    parts.init_workspace_remote(layout)
    parts.init_postgres(layout)
    sup = supervisor(layout)
    _start(sup, parts.postgres(layout))
    parts.create_databases(layout)
    _start(sup, parts.redis(layout))
    _start(sup, parts.mlflow(layout))
    _start(sup, monitoring.metrics_exporter(layout, project))
    _start(sup, monitoring.prometheus(layout))
    if not any(sup.status().get(p, {}).get("alive") for p in parts.AIRFLOW_PARTS):
        parts.migrate_airflow(layout, project)
    for part in parts.AIRFLOW_PARTS:
        _start(sup, parts.airflow(layout, project, part, airflow_env))
    wait_healthy(layout, timeout_s)
    return status(layout.state)


def _start(sup: Supervisor, spec: Any) -> None:
    try:
        sup.start(spec)
    except ServiceError as exc:
        raise StackError(f"the stack's {spec.name} did not start: {exc}") from None


def wait_healthy(layout: layouts.Layout, timeout_s: float) -> dict[str, Any]:
    """Wait until Airflow reports its database, scheduler, DAG processor and triggerer healthy."""
    deadline = time.monotonic() + timeout_s
    while True:
        health = airflow_health(layout)
        states = {part: (health.get(part) or {}).get("status") for part in AIRFLOW_HEALTH}
        if all(state == "healthy" for state in states.values()):
            return health
        dead = [n for n, r in supervisor(layout).status().items() if not r["alive"]]
        if dead or time.monotonic() > deadline:
            why = f"{dead} stopped" if dead else f"not healthy within {timeout_s:g} s"
            raise StackError(
                f"the stack's Airflow is {why}: {states}; logs in {layout.state / 'processes' / 'logs'}"
            )
        time.sleep(1.0)


AIRFLOW_HEALTH = ("metadatabase", "scheduler", "dag_processor", "triggerer")


def airflow_health(layout: layouts.Layout) -> dict[str, Any]:
    """``GET /api/v2/monitor/health`` of the stack's api-server; empty while it does not answer."""
    import json

    try:
        with urllib.request.urlopen(f"{layout.api_url}/api/v2/monitor/health", timeout=3) as response:
            return dict(json.loads(response.read()))
    except (urllib.error.URLError, OSError, ValueError):
        return {}


def down(state: Path | None = None, timeout_s: float = 10.0) -> dict[str, str]:
    """Stop every part by PID (the workers' task processes too), Airflow first; what happened to each."""
    root = state or layouts.state_dir()
    if not (root / "stack.json").exists():
        return {}
    layout = layouts.load(root, choose_port=free_port)  # a state folder from before a new part: still stops
    sup = supervisor(layout)
    records = sup.status()
    stopped: dict[str, str] = {}
    for group in STOP_ORDER:
        procs = []
        for name in group:
            record = records.get(name)
            if record and record["alive"]:
                procs += [psutil.Process(record["pid"]), *descendants(record)]
        end_processes(procs, timeout_s)
        for name in group:
            if name in records:
                stopped[name] = "stopped" if records[name]["alive"] else sup.stop(name)
                sup.stop(name)
    stopped.update(services.down(state=layout.services_state))
    return stopped


def status(state: Path | None = None) -> dict[str, Any]:
    """Each part (PID, alive, port answering), the addresses, and where the client environment is."""
    root = state or layouts.state_dir()
    if not (root / "stack.json").exists():
        return {"state": str(root), "parts": {}, "running": False}
    layout = layouts.load(root)
    records = {**services.status(layout.services_state), **supervisor(layout).status()}
    part_status = {
        name: {
            "pid": record["pid"],
            "alive": record["alive"],
            "answers": bool(record["alive"] and (not record["port"] or port_open(record["port"]))),
            "log": record["log"],
        }
        for name, record in records.items()
    }
    expected = {"kafka", "zookeeper", "s3", *START_ORDER}
    return {
        "state": str(layout.state),
        "running": expected <= {n for n, p in part_status.items() if p["answers"]},
        "parts": part_status,
        "airflow": layout.api_url,
        "airflow_login": f"{layouts.AIRFLOW_ADMIN}, password in {layout.state / 'airflow/passwords.json'}",
        "mlflow": layout.tracking_uri,
        "prometheus": layout.prometheus_url,
        "metrics": f"{layout.metrics_url}/metrics",
        "client_env": str(layout.state / "stack.env"),
    }


def run(params: Params | None, settings: Settings, action: str, install: bool = False) -> dict[str, Any]:
    """The ``flywheel stack`` command: ``up``, ``down`` or ``status`` of the stack under the home.

    ``params`` is unused (the stack writes its own, ``<state>/params.yaml``): the argument keeps the
    signature every stage's ``run`` has.
    """
    state = layouts.state_dir({"FLYWHEEL_HOME": str(settings.home)} | _stack_dir_env())
    if action == "up":
        return up(state, settings.project, install=install)
    if action == "down":
        return {"stopped": down(state)}
    if action == "status":
        return status(state)
    raise StackError(f"stack action {action!r}: expected up, down or status")


def _stack_dir_env() -> dict[str, str]:
    import os

    return (
        {"FLYWHEEL_STACK_DIR": os.environ["FLYWHEEL_STACK_DIR"]}
        if os.environ.get("FLYWHEEL_STACK_DIR")
        else {}
    )
