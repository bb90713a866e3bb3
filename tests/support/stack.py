"""The production topology for tests/stack: ``flywheel stack`` on a private state folder, stopped by PID.

The fixture is ``stack`` in tests/conftest.py. The stack's params are the demo's with a short training and
yearly schedules (only the runs a test makes run); the client side of the test (producing to Kafka, reading
MLflow, ``flywheel lineage``) gets the stack's client environment, as ``stack.env`` gives a person.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipelines.common.lake import MANIFEST
from tests.support.install import ROOT

BIN = Path(sys.executable).parent
TIMEOUT_S = 900
# Retries come sooner than Airflow's default 5 minutes, and a dead worker's task is noticed after 30 s (not 5
# minutes): the faults rely on both. 20 s leave a stopped server the time to come back before the retry.
AIRFLOW_ENV = {
    "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "20",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
    "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
}


@dataclass
class Stack:
    """A running stack: its layout, its Airflow API, and the environment of its clients."""

    state: Path
    layout: Any
    api: Any
    env: dict[str, str]

    def flywheel(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """``flywheel ...`` as a client of the stack."""
        return subprocess.run(
            [str(BIN / "flywheel"), *args],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def model_name(self) -> str:
        return str(yaml.safe_load((self.state / "params.yaml").read_text())["promote"]["model_name"])

    def mlflow(self) -> Any:
        """An authenticated MlflowClient on the stack's tracking server."""
        from mlflow import MlflowClient

        return MlflowClient(self.layout.tracking_uri)


def stack_params() -> dict:
    """The demo params, a short training, yearly schedules, the lake on S3 and Kafka as the source."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"].update(
        epochs=4, patience=100, batch_size=256
    )  # no early stop: a fault test's epochs all run
    # the floors are not what this tier checks: the first model always becomes the champion
    params["promote"].update(bootstrap_rounds=200, min_roc_auc=0.5, min_pr_auc=0.0)
    params["mlflow"]["system_metrics"] = False
    params["drift"].update(window_days=1, min_rows=500, cooldown_hours=24, min_roc_auc=0.6)
    params["schedules"] = {**params.get("schedules", {}), "ingest": "0 0 1 1 *", "drift": "0 0 1 1 *"}
    params.setdefault("storage", {})["root"] = "s3://flywheel/lake"
    params["ingest"]["sources"] = ["kafka"]
    # small parts: an ingest of a few thousand events writes a hundred parts, one after the other, so the
    # PostgreSQL restart lands while the ingest task is still draining Kafka
    params["ingest"]["kafka"].update(poll_records=50, chunk_rows=50)
    return params


def client_environment(layout: Any, home: Path) -> dict[str, str]:
    from pipelines import stack

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "FLYWHEEL", "MLFLOW", "AWS_"))}
    env.update(stack.client_env(layout))
    env.update(FLYWHEEL_HOME=str(home), FLYWHEEL_PROJECT=str(ROOT))
    return env


def produce(
    stack: Stack, batch: str, rows: int, seed: int, start: Any, end: Any, drift: bool = False
) -> dict[str, Any]:
    """Demo events on the stack's Kafka topic (as ``flywheel produce --to kafka`` with ``stack.env``)."""
    args = ["produce", "--to", "kafka", "--rows", str(rows), "--seed", str(seed), "--batch", batch]
    args += ["--start", start.isoformat(), "--end", end.isoformat(), "--json"]
    if drift:
        args += ["--covariate-drift", "1.0", "--concept-drift", "0.3"]
    proc = stack.flywheel(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def kafka_offsets(stack: Stack) -> tuple[dict[str, int], dict[str, int]]:
    """The ingest consumer group's committed offsets (0: none yet) and the topics' end offsets, by
    ``topic:partition``. Asked of the broker as any client would, without joining the group."""
    from kafka import KafkaConsumer, TopicPartition

    cfg = yaml.safe_load((stack.state / "params.yaml").read_text())["ingest"]["kafka"]
    consumer = KafkaConsumer(
        bootstrap_servers=stack.env["FLYWHEEL_KAFKA_BOOTSTRAP"],
        group_id=cfg["group_id"],
        enable_auto_commit=False,
    )
    try:
        parts = [TopicPartition(t, p) for t in cfg["topics"] for p in consumer.partitions_for_topic(t) or ()]
        committed = {tp: consumer.committed(tp) or 0 for tp in parts}
        end = consumer.end_offsets(parts)
    finally:
        consumer.close(autocommit=False)
    return (
        {f"{tp.topic}:{tp.partition}": offset for tp, offset in committed.items()},
        {f"{tp.topic}:{tp.partition}": offset for tp, offset in end.items()},
    )


def stack_lake(stack: Stack) -> tuple[Any, dict[str, Any]]:
    """The stack's lake on S3 as Flywheel reads it (listings not cached), and its params."""
    from pipelines.common.lake import Lake

    params = yaml.safe_load((stack.state / "params.yaml").read_text())
    lake = Lake(params["storage"]["root"])
    lake.fs.invalidate_cache()
    return lake, params


def landing_files(stack: Stack, run_id: str) -> list[str]:
    """The file names in an ingest run's Kafka landing partition on S3, listed now (no cache)."""
    lake, _ = stack_lake(stack)
    partition = lake.partition("landing", run_id, source="kafka")
    if not lake.fs.exists(partition):
        return []
    return [path.rsplit("/", 1)[-1] for path in lake.fs.ls(partition, detail=False)]


def landing_manifests(stack: Stack) -> dict[str, dict[str, Any]]:
    """Every complete Kafka landing partition's manifest, by partition, read from S3 now."""
    lake, _ = stack_lake(stack)
    partitions = lake.complete_partitions("landing", source="kafka")
    return {partition: lake.read_json(f"{partition}/{MANIFEST}") for partition in partitions}


def validated_keys(stack: Stack) -> list[str]:
    """The event keys in every complete validated partition of the lake, one entry per stored row."""
    lake, params = stack_lake(stack)
    key = params["schema"]["key"]
    return [
        str(k)
        for partition in lake.complete_partitions("validated")
        for k in lake.read_partition_table(partition, columns=[key]).column(key).to_pylist()
    ]


def prometheus_query(stack: Stack, promql: str) -> list[tuple[dict[str, str], float]]:
    """``GET /api/v1/query`` on the stack's Prometheus: ``(labels, value)`` of each series in the vector."""
    import json
    import urllib.parse
    import urllib.request

    url = f"{stack.layout.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.loads(response.read())
    assert body["status"] == "success" and body["data"]["resultType"] == "vector", body
    return [(dict(s["metric"]), float(s["value"][1])) for s in body["data"]["result"]]


def wait_scraped_after(stack: Stack, job: str, since: float) -> None:
    """Poll until Prometheus holds a scrape of ``job`` that started after ``since`` (epoch seconds)."""
    import time

    deadline = time.monotonic() + TIMEOUT_S
    while not [v for _, v in prometheus_query(stack, f'timestamp(up{{job="{job}"}})') if v > since]:
        assert time.monotonic() < deadline, f"Prometheus scraped job {job!r} not once within {TIMEOUT_S} s"
        time.sleep(1.0)
