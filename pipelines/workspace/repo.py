"""The DVC workspace: a git repository where snapshot → featurize → train → evaluate run.

The project's ``dvc.yaml`` and ``params.yaml`` (with a run's overrides) are
synced into the workspace before each run; ``dvc repro`` then decides which
stages must run. After a run, ``dvc.lock`` is committed to the workspace's git
history and the outputs are pushed to the DVC remote, so every model can be
traced back to the exact data and parameters that made it.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from pipelines.common.config import apply_overrides, parse_params, read_params_dict
from pipelines.common.errors import FlywheelError
from pipelines.common.settings import Settings
from pipelines.workspace.model_code import sync_model_code
from pipelines.workspace.paths import git_remote_url, remote_url

log = logging.getLogger(__name__)

Outcome = Literal["ran", "skipped", "restored"]


class WorkspaceError(FlywheelError):
    """A git or DVC command in the workspace failed."""


@dataclass(frozen=True)
class StageResult:
    """What ``dvc repro`` did with one stage."""

    stage: str
    outcome: Outcome
    seconds: float = 0.0

    @property
    def ran(self) -> bool:
        return self.outcome == "ran"


def command_env(settings: Settings) -> dict[str, str]:
    """The environment for stage commands: settings, and this interpreter's scripts first on PATH."""
    env = {**os.environ, **settings.as_env()}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("DVC_NO_ANALYTICS", "1")
    env.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return env


STOP_GRACE_S = 10.0  # after SIGINT, how long a stopped command may clean up (DVC releases its locks)


def _run(args: list[str], cwd: Path, settings: Settings, what: str) -> str:
    """Run a command in its own process group; an interruption (a task timeout) stops the whole group."""
    with subprocess.Popen(
        args,
        cwd=cwd,
        env=command_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as proc:
        try:
            stdout, stderr = proc.communicate()
        except BaseException:  # AirflowTaskTimeout (SIGALRM), SIGTERM, Ctrl-C: nothing may outlive the task
            stop_group(proc)
            raise
    if proc.returncode != 0:
        raise WorkspaceError(
            f"{what} failed in {cwd} (exit {proc.returncode}): `{' '.join(args)}`\n"
            f"{stdout[-4000:]}{stderr[-4000:]}"
        )
    return stdout + stderr


def stop_group(proc: subprocess.Popen[str]) -> None:
    """SIGINT to the command's process group (DVC cleans up on it), then SIGKILL to whatever is left."""
    try:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            pass
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # nothing of the group is left
        pass
    proc.wait()


def dvc_executable() -> str:
    """The ``dvc`` installed beside this interpreter, else the one on PATH."""
    beside = Path(sys.executable).parent / "dvc"
    return str(beside) if beside.exists() else "dvc"


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def init(settings: Settings) -> Path:
    """Create the workspace (git, DVC, the local remote) if needed; idempotent."""
    ws = settings.workspace
    ws.mkdir(parents=True, exist_ok=True)
    if not (ws / ".git").exists():
        _run(["git", "init", "-q", "-b", "main"], ws, settings, "git init")
        _run(["git", "config", "user.name", "Flywheel"], ws, settings, "git config")
        _run(["git", "config", "user.email", "flywheel@localhost"], ws, settings, "git config")
    if not (ws / ".dvc").exists():
        _run([dvc_executable(), "init", "-q"], ws, settings, "dvc init")
    remote = remote_url(settings)
    if remote == str(settings.dvc_remote):
        settings.dvc_remote.mkdir(parents=True, exist_ok=True)
    configure_dvc(ws, remote)
    link = ws / "pipelines"
    if not link.exists():
        # Stages list their own source as deps: a code change reruns them.
        link.symlink_to(settings.project / "pipelines", target_is_directory=True)
    exclude = ws / ".git" / "info" / "exclude"
    if "/pipelines" not in exclude.read_text():
        exclude.write_text(exclude.read_text() + "/pipelines\n")
    # Stages depend on their package folders: bytecode caches are not code.
    _write_if_changed(ws / ".dvcignore", "__pycache__/\n*.pyc\n")
    return ws


DVC_REMOTE = "store"


def configure_dvc(ws: Path, remote: str) -> bool:
    """Autostage on and ``remote`` as the default remote ``store`` in the workspace's ``.dvc/config``.

    What ``dvc config core.autostage true`` and ``dvc remote add -f -d store <remote>`` would write,
    written only when something differs: each run of the training DAG calls :func:`init`, and each
    ``dvc`` command costs a process that imports DVC. The file is DVC's own INI format, read and
    written with the library DVC uses for it (configobj), so other settings and comments stay.
    Returns whether the file changed.
    """
    from configobj import ConfigObj

    if "://" not in remote and not os.path.isabs(remote):  # `dvc remote add` resolves a relative path
        remote = os.path.abspath(remote)
    path = ws / ".dvc" / "config"
    config = ConfigObj(str(path), encoding="utf-8")
    wanted = {
        "core": {"autostage": "true", "remote": DVC_REMOTE},
        f'remote "{DVC_REMOTE}"': {"url": remote},
    }
    if all(config.get(section, {}).get(k) == v for section, keys in wanted.items() for k, v in keys.items()):
        return False
    for section, keys in wanted.items():
        config.setdefault(section, {}).update(keys)
    config.write()
    return True


def sync(settings: Settings, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Copy ``dvc.yaml``, the run's effective ``params.yaml`` and the network factory's source into the
    workspace."""
    ws = settings.workspace
    raw = apply_overrides(read_params_dict(settings.params_path), overrides or {})
    # Every section written out with its defaults: DVC reads the exact values each stage used.
    params = parse_params(raw).model_dump(mode="json", by_alias=True)
    _write_if_changed(ws / "dvc.yaml", (settings.project / "dvc.yaml").read_text())
    _write_if_changed(ws / "params.yaml", yaml.safe_dump(params, sort_keys=False))
    sync_model_code(ws, params["train"]["model"])
    extra = params.get("validate", {}).get("extra_expectations")
    if extra and not Path(extra).is_absolute():
        src = settings.params_path.parent / extra
        if src.exists():
            (ws / extra).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, ws / extra)
    return params


_RAN = re.compile(r"Running stage '(?P<stage>[^']+)'")
_CACHED = re.compile(r"Stage '(?P<stage>[^']+)' is cached")


def classify(stage: str, output: str) -> Outcome:
    """Tell from ``dvc repro`` output whether the stage ran, was skipped, or was restored from cache."""
    if any(m.group("stage") == stage for m in _RAN.finditer(output)):
        return "ran"
    if any(m.group("stage") == stage for m in _CACHED.finditer(output)):
        return "restored"
    return "skipped"


def repro(settings: Settings, stage: str) -> StageResult:
    """Run ``dvc repro --single-item <stage>`` in the workspace and say what it did."""
    start = time.perf_counter()
    output = _run(
        [dvc_executable(), "repro", "--single-item", stage],
        settings.workspace,
        settings,
        f"dvc repro of stage '{stage}'",
    )
    for line in output.splitlines():
        if line.strip() and "it/s]" not in line:  # progress bars carry nothing a log reader needs
            log.info("dvc: %s", line)
    return StageResult(stage=stage, outcome=classify(stage, output), seconds=time.perf_counter() - start)


def commit(settings: Settings, message: str) -> str:
    """Commit the workspace's lock and params, push outputs to the remote; return the commit."""
    ws = settings.workspace
    _run([dvc_executable(), "push", "-q"], ws, settings, "dvc push")
    _run(["git", "add", "-A", "."], ws, settings, "git add")
    status = _run(["git", "status", "--porcelain"], ws, settings, "git status")
    if status.strip():
        _run(["git", "commit", "-q", "-m", message], ws, settings, "git commit")
    return _run(["git", "rev-parse", "HEAD"], ws, settings, "git rev-parse").strip()


# -- a workspace shared through its remotes (several workers, no shared disk) ------------------------

MAIN = "main"


def run_branch(run_id: str) -> str:
    """The git branch a training run's tasks hand the workspace on through: ``runs/<run id>``."""
    return "runs/" + re.sub(r"[^A-Za-z0-9._-]+", "-", run_id).strip("-.")


def _git(settings: Settings, *args: str, what: str | None = None) -> str:
    return _run(["git", *args], settings.workspace, settings, what or f"git {args[0]}")


def _has_ref(settings: Settings, ref: str) -> bool:
    proc = subprocess.run(
        ["git", "rev-parse", "--verify", "-q", ref], cwd=settings.workspace, capture_output=True, text=True
    )
    return proc.returncode == 0


def checkout(settings: Settings, branch: str) -> str | None:
    """Bring the workspace to the tip of ``branch`` on the shared git remote, with its DVC outputs.

    Clones the remote when this worker has no workspace yet; starts ``branch`` from ``main`` when it does
    not exist yet (an empty remote: a fresh workspace). Outputs recorded in ``dvc.lock`` come from the DVC
    remote. Returns the commit checked out; None without a shared remote (nothing to do).
    """
    remote = git_remote_url()
    if remote is None:
        return None
    ws = settings.workspace
    if not (ws / ".git").exists():
        ws.parent.mkdir(parents=True, exist_ok=True)
        if ws.exists():
            shutil.rmtree(ws)
        _run(["git", "clone", "-q", remote, str(ws)], ws.parent, settings, f"git clone of {remote}")
    _git(settings, "config", "user.name", "Flywheel")
    _git(settings, "config", "user.email", "flywheel@localhost")
    remotes = _git(settings, "remote").split()
    _git(settings, "remote", "set-url" if "origin" in remotes else "add", "origin", remote)
    _git(settings, "fetch", "-q", "--prune", "origin", what=f"git fetch from {remote}")
    start = next((f"origin/{b}" for b in (branch, MAIN) if _has_ref(settings, f"origin/{b}")), None)
    if start is not None:
        _git(settings, "checkout", "-q", "-B", branch, start)
        _git(settings, "reset", "-q", "--hard", start)
        _git(settings, "clean", "-q", "-fd")
    init(settings)  # DVC, its remote and the link to the project's code, on a fresh clone too
    if start is None:
        return None  # an empty remote: this task makes the first commit
    _run([dvc_executable(), "pull", "-q", "--allow-missing"], ws, settings, "dvc pull")
    return _git(settings, "rev-parse", "HEAD").strip()


def publish(settings: Settings, branch: str, message: str, also: tuple[str, ...] = ()) -> str | None:
    """Push this task's outputs to the DVC remote and its commit to ``branch`` (and ``also``) on the remote.

    None without a shared remote.
    """
    if git_remote_url() is None:
        return None
    head = commit(settings, message)
    for target in (branch, *also):
        _git(settings, "push", "-q", "origin", f"HEAD:refs/heads/{target}", what=f"git push to {target}")
    return head


@contextmanager
def attached(settings: Settings, run_id: str, what: str, merge: bool = False) -> Iterator[Path]:
    """One task's turn at the workspace: checked out from the shared remote, published when it succeeds.

    ``merge`` also moves ``main`` to the run's commit (the last task of a training run). Without
    ``FLYWHEEL_WORKSPACE_REMOTE`` the local workspace is used as it is.
    """
    branch = run_branch(run_id)
    checkout(settings, branch)
    yield settings.workspace
    publish(settings, branch, f"{run_id}: {what}", (MAIN,) if merge else ())
