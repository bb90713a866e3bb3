"""A workspace shared through its remotes: workers with separate disks hand a run on via git and DVC."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pipelines import workspace
from pipelines.common.settings import Settings
from tests.support.install import ROOT

pytestmark = pytest.mark.integration


def worker(tmp_path: Path, name: str) -> Settings:
    """One worker's settings: its own home (workspace, DVC cache), the project's code and params."""
    return Settings.from_env(
        {
            "FLYWHEEL_HOME": str(tmp_path / name),
            "FLYWHEEL_PARAMS": str(ROOT / "params.yaml"),
            "FLYWHEEL_PROJECT": str(ROOT),
        }
    )


@pytest.fixture
def remotes(tmp_path, monkeypatch) -> Path:
    """A bare git remote and a DVC remote folder, as ``flywheel stack`` sets them."""
    git_remote = tmp_path / "workspace.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(git_remote)], check=True)
    monkeypatch.setenv("FLYWHEEL_WORKSPACE_REMOTE", str(git_remote))
    monkeypatch.setenv("FLYWHEEL_DVC_REMOTE", str(tmp_path / "dvc-remote"))
    return git_remote


def dvc_add(settings: Settings, relative: str, text: str) -> None:
    path = settings.workspace / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    subprocess.run(
        [workspace.dvc_executable(), "add", "-q", relative],
        cwd=settings.workspace,
        env=workspace.command_env(settings),
        check=True,
    )


def remote_ref(git_remote: Path, ref: str) -> str:
    proc = subprocess.run(["git", "-C", str(git_remote), "rev-parse", ref], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def test_a_run_moves_between_workers_through_the_remotes_only(tmp_path, remotes):
    first, second = worker(tmp_path, "worker-a"), worker(tmp_path, "worker-b")
    run_id = "manual__2026-11-28T10:00:00+00:00"

    with workspace.attached(first, run_id, "prepare"):
        workspace.init(first)
        workspace.sync(first)
        dvc_add(first, "data/note.txt", "made on worker a\n")
    branch = workspace.run_branch(run_id)
    assert remote_ref(remotes, branch), f"the run's branch {branch} was not pushed"
    assert not remote_ref(remotes, "main"), "main moves only when the run is recorded"

    with workspace.attached(second, run_id, "record", merge=True) as ws:
        assert ws == second.workspace != first.workspace
        assert (ws / "data" / "note.txt").read_text() == "made on worker a\n"  # pulled from the DVC remote
        assert (ws / "params.yaml").exists() and (ws / "pipelines").is_symlink()
    assert remote_ref(remotes, "main") == remote_ref(remotes, branch)

    # The next run starts from main on a worker that has seen neither run.
    third = worker(tmp_path, "worker-c")
    assert workspace.checkout(third, workspace.run_branch("manual__next")) == remote_ref(remotes, "main")
    assert (third.workspace / "data" / "note.txt").read_text() == "made on worker a\n"


def test_a_task_that_fails_pushes_nothing(tmp_path, remotes):
    settings = worker(tmp_path, "worker-a")
    with pytest.raises(RuntimeError, match="the stage failed"):
        with workspace.attached(settings, "run-1", "prepare"):
            workspace.init(settings)
            raise RuntimeError("the stage failed")
    assert not remote_ref(remotes, workspace.run_branch("run-1"))


def test_without_a_shared_remote_the_local_workspace_is_used_as_it_is(tmp_path, monkeypatch):
    monkeypatch.delenv("FLYWHEEL_WORKSPACE_REMOTE", raising=False)
    settings = worker(tmp_path, "local")
    with workspace.attached(settings, "run-1", "prepare") as ws:
        assert not (ws / ".git").exists()  # nothing cloned, nothing pushed
    assert workspace.checkout(settings, "runs/x") is None
    assert workspace.publish(settings, "runs/x", "nothing") is None
