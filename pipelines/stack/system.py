"""The Debian packages the stack runs: PostgreSQL 15, Redis and Prometheus, found here or installed.

``make stack`` installs them with apt-get when it may (as root); otherwise :func:`require` fails
naming the apt-get command to run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from pipelines.stack.errors import StackError

APT_PACKAGES = ("postgresql", "redis-server", "prometheus")
APT_COMMAND = "apt-get install -y " + " ".join(APT_PACKAGES)
POSTGRES_ROOT = Path("/usr/lib/postgresql")


def postgres_bin(root: Path | None = None) -> Path | None:
    """The newest ``/usr/lib/postgresql/<major>/bin`` holding ``postgres`` and ``initdb``; None if none."""
    root = root or POSTGRES_ROOT
    found = [
        d / "bin"
        for d in (root.iterdir() if root.is_dir() else [])
        if (d / "bin" / "postgres").exists() and (d / "bin" / "initdb").exists()
    ]
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, default=None)


def redis_server() -> str | None:
    """The ``redis-server`` on PATH (Debian: ``/usr/bin/redis-server``); None if none."""
    return shutil.which("redis-server")


def prometheus() -> str | None:
    """The ``prometheus`` server on PATH (Debian: ``/usr/bin/prometheus``, 2.42 in bookworm); None if none."""
    return shutil.which("prometheus")


def missing() -> list[str]:
    """The Debian packages not installed here (of :data:`APT_PACKAGES`)."""
    gone = []
    if postgres_bin() is None:
        gone.append("postgresql")
    if redis_server() is None:
        gone.append("redis-server")
    if prometheus() is None:
        gone.append("prometheus")
    return gone


def install(packages: list[str]) -> None:
    """``apt-get install -y`` the packages (as root only); fails naming the command otherwise."""
    if os.geteuid() != 0:
        raise StackError(
            f"the stack needs the Debian packages {packages}, which are not installed; run "
            f"`sudo {APT_COMMAND}` and try again"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    proc = subprocess.run(
        ["apt-get", "install", "-y", *packages], env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise StackError(
            f"`apt-get install -y {' '.join(packages)}` failed (exit {proc.returncode}); run "
            f"`apt-get update && {APT_COMMAND}` by hand:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )


def require(install_missing: bool = False) -> None:
    """Fail, naming the apt-get command, when PostgreSQL, Redis or Prometheus is missing (or install them)."""
    gone = missing()
    if gone and install_missing:
        install(gone)
        gone = missing()
    if gone:
        raise StackError(
            f"the stack needs the Debian packages {gone}, which are not installed; expected "
            f"PostgreSQL under {POSTGRES_ROOT}/<version>/bin, redis-server and prometheus on PATH: "
            f"run `{APT_COMMAND}`"
        )


def as_postgres() -> list[str]:
    """The prefix that runs a PostgreSQL binary as the ``postgres`` user when this process is root.

    ``setpriv`` executes the binary in place, so the PID recorded is the server's own.
    """
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]


def give_to_postgres(path: Path) -> None:
    """Hand a folder to the ``postgres`` user (as root), so the server may write there."""
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")
