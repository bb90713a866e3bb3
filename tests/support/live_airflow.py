"""A live Airflow for the UI, backfill and run-note tests: ``airflow standalone``, private home and ports.

The fixture is ``live_airflow`` in tests/conftest.py.

The fixture starts the same thing ``make up`` starts (api-server, scheduler, dag-processor,
triggerer; LocalExecutor on SQLite) with the project's DAGs, plugins and pools, and a private
``AIRFLOW_HOME`` and ``FLYWHEEL_HOME``. Validated demo events are prepared with the ``flywheel``
command while Airflow starts. The login is the deterministic one of ``make up``: the simple auth
manager's password file is written before the start. Cron schedules are off
(``[scheduler] use_job_schedule``) so only the runs a test asks for run. Stopped by PID at the end.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.install import ROOT

BIN = Path(sys.executable).parent
ARTIFACTS = ROOT / "test-artifacts"
USER, PASSWORD = "admin", "flywheel"
DAYS_OF_EVENTS = 14


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveAirflow:
    """A running ``airflow standalone`` and the Flywheel installation it works on."""

    url: str
    home: Path
    env: dict[str, str]
    log: Path
    process: subprocess.Popen
    today: datetime
    _token: str | None = field(default=None, repr=False)

    # -- REST API ------------------------------------------------------------------------------

    def token(self) -> str:
        if self._token is None:
            _, body = self._request("POST", "/auth/token", {"username": USER, "password": PASSWORD})
            self._token = body["access_token"]
        return self._token

    def _request(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                return exc.code, json.loads(raw)
            except ValueError:
                return exc.code, raw.decode(errors="replace")

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Call the REST API (``/api/v2...``) as the admin user."""
        return self._request(method, path, body, token=self.token())

    def runs(self, dag_id: str) -> list[dict]:
        status, body = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100&order_by=run_after")
        assert status == 200, body
        return body["dag_runs"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        quoted = urllib.parse.quote(run_id, safe="")
        status, body = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances")
        assert status == 200, body
        return {ti["task_id"]: ti["state"] for ti in body["task_instances"]}

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 240) -> dict:
        """Poll until the run finishes; return it. Fails with the task states and the log tail."""
        quoted = urllib.parse.quote(run_id, safe="")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, run = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quoted}")
            assert status == 200, run
            if run["state"] in ("success", "failed"):
                return run
            self.assert_alive()
            time.sleep(2)
        pytest.fail(
            f"{dag_id} run {run_id} did not finish in {timeout:.0f} s; tasks: "
            f"{self.task_states(dag_id, run_id)}\n{self.log_tail()}"
        )

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        quoted = urllib.parse.quote(run_id, safe="")
        _, body = self.api(
            "GET",
            f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances/{task_id}/logs/"
            f"{try_number}?full_content=true",
        )
        return json.dumps(body)[-6000:]

    # -- command line and process ----------------------------------------------------------------

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run ``airflow ...`` or ``flywheel ...`` against this installation."""
        proc = subprocess.run(
            [str(BIN / args[0]), *args[1:]],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
        )
        assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        return proc

    def assert_alive(self) -> None:
        if self.process.poll() is not None:
            pytest.fail(f"airflow standalone exited with {self.process.returncode}\n{self.log_tail()}")

    def log_tail(self, chars: int = 6000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def _params(tmp: Path) -> Path:
    """The demo params with a fast training configuration and this installation's event folder."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["ingest"]["files"]["path"] = str(tmp / "events")
    params["ingest"].pop("source", None)
    params["ingest"]["sources"] = ["files"]
    params["train"].update(epochs=2, batch_size=256, patience=2)
    params["promote"]["bootstrap_rounds"] = 100
    params["mlflow"]["system_metrics"] = False
    path = tmp / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def environment(tmp: Path, port: int) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "FLYWHEEL", "MLFLOW_TRACKING"))
    }
    home = tmp / "home"
    env.update(
        {
            "AIRFLOW_HOME": str(tmp / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "1",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # only the runs a test creates
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
            # record sets the training run's note through this API, as the admin user (as `make run` does)
            "AIRFLOW_CONN_FLYWHEEL_AIRFLOW_API": json.dumps(
                {"conn_type": "http", "host": "127.0.0.1", "port": port, "login": USER, "password": PASSWORD}
            ),
            "FLYWHEEL_HOME": str(home),
            "FLYWHEEL_PARAMS": str(_params(tmp)),
            "FLYWHEEL_PROJECT": str(ROOT),
            "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
            "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING": "false",
            "GX_ANALYTICS_ENABLED": "false",
            "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT / "dags"), str(ROOT)]),
            "PATH": os.pathsep.join([str(BIN), env.get("PATH", "")]),
        }
    )
    return env


def prepare_airflow(env: dict[str, str], airflow_home: Path) -> None:
    """Metadata DB, Flywheel's pools, and the deterministic login of ``make up``."""
    airflow_home.mkdir(parents=True)
    pools = airflow_home / "pools.json"
    pools.write_text(
        json.dumps(
            {
                "gpu": {"slots": 1, "description": "training", "include_deferred": False},
                "dvc": {"slots": 1, "description": "DVC workspace", "include_deferred": False},
            }
        )
    )
    for args in (["db", "migrate"], ["pools", "import", str(pools)]):
        proc = subprocess.run(
            [str(BIN / "airflow"), *args], env=env, capture_output=True, text=True, timeout=180
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (airflow_home / "simple_auth_manager_passwords.json.generated").write_text(json.dumps({USER: PASSWORD}))


def prepare_events(env: dict[str, str], tmp: Path, today: datetime) -> subprocess.Popen:
    """Seeded demo events over the last days, ingested and validated (runs while Airflow starts)."""
    start = (today - timedelta(days=DAYS_OF_EVENTS)).date().isoformat()
    script = (
        f"set -e; flywheel produce --out {tmp / 'events'} --rows 3000 --seed 11 --start {start} "
        f"--end {today.date().isoformat()}; flywheel ingest --json; flywheel validate --json"
    )
    return subprocess.Popen(
        ["bash", "-c", script], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def wait_until_ready(live: LiveAirflow, dag_ids: set[str], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        live.assert_alive()
        try:
            status, health = live._request("GET", "/api/v2/monitor/health")
            if status == 200 and health["scheduler"]["status"] == "healthy":
                status, body = live.api("GET", "/api/v2/dags?limit=100")
                if status == 200 and dag_ids <= {d["dag_id"] for d in body["dags"]}:
                    return
        except (urllib.error.URLError, OSError, KeyError, TypeError):
            pass
        time.sleep(1)
    pytest.fail(f"Airflow was not ready in {timeout:.0f} s\n{live.log_tail()}")


def stop(process: subprocess.Popen) -> None:
    """Stop ``airflow standalone`` by its PID (SIGINT: it stops its components), then its process group."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)  # its own session: the group holds only what it started
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)
