"""`flywheel services up|status|down`: real brokers and S3 API started by the project, stopped by PID."""

from __future__ import annotations

import json
import subprocess

import psutil
import pytest

from tests.support.sources import flywheel_cli, last_json

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def services_cli(state, *args: str) -> dict:
    import os

    proc = subprocess.run(
        flywheel_cli("services", *args, "--json"),
        capture_output=True,
        text=True,
        env={**os.environ, "FLYWHEEL_SERVICES_DIR": str(state)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return last_json(proc.stdout)


def test_up_status_down_by_pid(tmp_path):
    from pipelines.demo.publish import ensure_topic
    from pipelines.demo.services.supervisor import free_port
    from pipelines.ingest.endpoints import KafkaEndpoint, S3Endpoint

    tansu, s3 = free_port(), free_port()
    up = services_cli(tmp_path, "up", "tansu", "s3", "--port", f"tansu={tansu}", "--port", f"s3={s3}")
    try:
        pids = {name: record["pid"] for name, record in up["services"].items()}
        assert set(pids) == {"tansu", "s3"} and all(psutil.pid_exists(p) for p in pids.values())
        assert up["environment"]["FLYWHEEL_KAFKA_BOOTSTRAP"] == f"127.0.0.1:{tansu}"
        assert up["environment"]["AWS_ENDPOINT_URL"] == f"http://127.0.0.1:{s3}"
        state = json.loads((tmp_path / "services.json").read_text())
        assert {name: record["pid"] for name, record in state.items()} == pids
        assert ensure_topic("ping", KafkaEndpoint(f"127.0.0.1:{tansu}"))  # a real broker answers
        S3Endpoint(f"http://127.0.0.1:{s3}", "k", "s").filesystem().mkdir("ping")  # a real S3 API answers

        again = services_cli(tmp_path, "up", "tansu", "--port", f"tansu={tansu}")
        assert (
            again["services"]["tansu"]["already_running"]
            and again["services"]["tansu"]["pid"] == pids["tansu"]
        )
        status = services_cli(tmp_path, "status")["services"]
        assert all(status[name]["alive"] and status[name]["ready"] for name in pids)
    finally:
        down = services_cli(tmp_path, "down")
    assert down["stopped"] == {"tansu": "stopped", "s3": "stopped"}
    assert not any(
        psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids.values()
    )
    assert services_cli(tmp_path, "status")["services"] == {}
