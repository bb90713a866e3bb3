"""What the stack's operators watch: ``flywheel metrics-exporter`` and Debian's Prometheus scraping it.

The exporter reads the stack's registry (MLflow, as the admin: the server refuses anonymous reads) and
its lake on S3, exactly as a client with ``stack.env`` would. Prometheus scrapes it and itself, from a
configuration written at every start (:func:`prometheus_config`). There is no StatsD exporter here:
bookworm has no ``prometheus-statsd-exporter`` package, so Airflow's StatsD metrics are exported in
the compose topology only; Grafana is in neither Debian nor PyPI (docs/operations.md#metrics).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from pipelines.demo.services.supervisor import Spec, port_open
from pipelines.stack import system
from pipelines.stack.layout import Layout, client_env
from pipelines.stack.parts import http_ok

BIN = Path(sys.executable).parent
SCRAPE_INTERVAL = "15s"
# A scrape of the exporter reads MLflow and several prefixes of the lake: seconds, not milliseconds
FLYWHEEL_SCRAPE = {"scrape_interval": "30s", "scrape_timeout": "25s"}
PARTS = ("metrics-exporter", "prometheus")


def metrics_exporter(layout: Layout, project: Path) -> Spec:
    """``flywheel metrics-exporter`` on the stack's MLflow and lake; ready once it listens.

    It listens only once its collector is built; a scrape itself takes seconds (MLflow, S3), longer
    than a readiness probe should wait.
    """
    home = layout.state / "metrics"
    home.mkdir(parents=True, exist_ok=True)
    port = layout.ports["metrics"]
    argv = [str(BIN / "flywheel"), "metrics-exporter", "--host", "127.0.0.1", "--port", str(port)]
    env = {**client_env(layout), "FLYWHEEL_HOME": str(home), "FLYWHEEL_PROJECT": str(project)}
    return Spec(
        "metrics-exporter",
        argv,
        port,
        layout.metrics_url,
        lambda spec, log: port_open(spec.port),
        env=env,
        cwd=home,
        start_timeout_s=120,
    )


def prometheus_config(layout: Layout) -> dict[str, Any]:
    """Prometheus's configuration: Flywheel's exporter (job ``flywheel``) and Prometheus itself."""

    def job(name: str, url: str, **options: str) -> dict[str, Any]:
        return {"job_name": name, **options, "static_configs": [{"targets": [url.removeprefix("http://")]}]}

    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": [
            job("flywheel", layout.metrics_url, **FLYWHEEL_SCRAPE),
            job("prometheus", layout.prometheus_url),
        ],
    }


def prometheus(layout: Layout) -> Spec:
    """Debian's ``prometheus`` with its configuration and TSDB under ``<state>/prometheus``."""
    server = system.prometheus()
    assert server is not None  # system.require() ran
    home = layout.state / "prometheus"
    (home / "data").mkdir(parents=True, exist_ok=True)
    config = home / "prometheus.yml"
    config.write_text(
        "# Written by `flywheel stack up` at every start (pipelines/stack/monitoring.py): edits are lost.\n"
        + yaml.safe_dump(prometheus_config(layout), sort_keys=False)
    )
    port = layout.ports["prometheus"]
    argv = [
        server,
        f"--config.file={config}",
        f"--storage.tsdb.path={home / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=15d",
    ]
    return Spec(
        "prometheus",
        argv,
        port,
        layout.prometheus_url,
        lambda spec, log: http_ok(f"{spec.endpoint}/-/ready"),
        cwd=home,
        start_timeout_s=60,
    )
