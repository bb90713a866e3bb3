"""Start background services, remember their PIDs in a state file, stop them by PID.

Each service is one process (its own session, so a terminal's Ctrl-C does not reach it) writing
to ``<state dir>/logs/<name>.log``. ``<state dir>/services.json`` holds, per service, the PID and
the process start time: a PID is only signalled while it still belongs to the process started
here (never a recycled PID, never by name).
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from pipelines.common.errors import FlywheelError

STATE_FILE = "services.json"


class ServiceError(FlywheelError):
    """A service could not be provisioned, started or stopped; the message says which and why."""


@dataclass
class Spec:
    """How to run one service and how to tell it is ready."""

    name: str
    argv: list[str]
    port: int
    endpoint: str
    ready: Callable[[Spec, Path], bool]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    start_timeout_s: float = 90.0
    stop_timeout_s: float = 30.0
    # the signal that asks it to stop cleanly (PostgreSQL: SIGINT, its "fast" shutdown; its SIGTERM waits
    # for every client to disconnect first, which a connection pool never does)
    stop_signal: int = signal.SIGTERM


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    """A TCP port nobody listens on now (for tests)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Supervisor:
    """The services of one state folder."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.logs = self.state_dir / "logs"

    # -- state ------------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = self._read()
            yield state
            tmp = self.state_dir / f"{STATE_FILE}.tmp"
            tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
            tmp.replace(self.state_dir / STATE_FILE)

    def _read(self) -> dict[str, Any]:
        path = self.state_dir / STATE_FILE
        return json.loads(path.read_text()) if path.exists() else {}

    @staticmethod
    def alive(record: dict[str, Any]) -> bool:
        """Whether the recorded process still runs (same PID *and* same start time)."""
        try:
            proc = psutil.Process(record["pid"])
            return bool(
                abs(proc.create_time() - record["create_time"]) < 0.01
                and proc.status() != psutil.STATUS_ZOMBIE
            )
        except (psutil.NoSuchProcess, psutil.AccessDenied, KeyError):
            return False

    def status(self) -> dict[str, dict[str, Any]]:
        """Every recorded service with ``alive`` (and ``ready``: its port answers)."""
        out = {}
        for name, record in self._read().items():
            alive = self.alive(record)
            out[name] = {**record, "alive": alive, "ready": alive and port_open(record["port"])}
        return out

    # -- start / stop -----------------------------------------------------------------------

    def start(self, spec: Spec) -> dict[str, Any]:
        """Start ``spec`` unless it already runs; wait until ready or fail with the log's tail."""
        with self._locked() as state:
            record = state.get(spec.name)
            if record and self.alive(record):
                return {**record, "already_running": True}
            if port_open(spec.port):
                raise ServiceError(
                    f"{spec.name}: port {spec.port} on 127.0.0.1 is already in use by another "
                    "process; stop it or choose another port"
                )
            self.logs.mkdir(parents=True, exist_ok=True)
            log_path = self.logs / f"{spec.name}.log"
            with open(log_path, "wb") as log:  # a fresh log: readiness is read from it
                proc = subprocess.Popen(
                    spec.argv,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=spec.cwd,
                    env={**os.environ, **spec.env},
                    start_new_session=True,
                )
            record = {
                "pid": proc.pid,
                "create_time": psutil.Process(proc.pid).create_time(),
                "port": spec.port,
                "endpoint": spec.endpoint,
                "log": str(log_path),
                "argv": spec.argv,
                "stop_signal": int(spec.stop_signal),
                "started_at": datetime.now(UTC).isoformat(),
            }
            state[spec.name] = record
        self._wait_ready(spec, proc, log_path)
        return {**record, "already_running": False}

    def _wait_ready(self, spec: Spec, proc: subprocess.Popen[bytes], log_path: Path) -> None:
        deadline = time.monotonic() + spec.start_timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self._forget(spec.name)
                raise ServiceError(
                    f"{spec.name} exited with status {proc.returncode} while starting; "
                    f"last lines of {log_path}:\n{tail(log_path)}"
                )
            if spec.ready(spec, log_path):
                return
            time.sleep(0.1)
        self.stop(spec.name)
        raise ServiceError(
            f"{spec.name} was not ready on port {spec.port} within {spec.start_timeout_s:g} s; "
            f"last lines of {log_path}:\n{tail(log_path)}"
        )

    def _forget(self, name: str) -> None:
        with self._locked() as state:
            state.pop(name, None)

    def stop(self, name: str, timeout_s: float = 30.0) -> str:
        """Send the recorded PID its spec's stop signal (SIGTERM by default), SIGKILL after ``timeout_s``.

        Returns ``stopped``, ``not running`` or ``unknown``.
        """
        with self._locked() as state:
            record = state.pop(name, None)
        if record is None:
            return "unknown"
        if not self.alive(record):
            return "not running"
        proc = psutil.Process(record["pid"])
        proc.send_signal(record.get("stop_signal", signal.SIGTERM))
        try:
            proc.wait(timeout_s)
        except psutil.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        return "stopped"


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
