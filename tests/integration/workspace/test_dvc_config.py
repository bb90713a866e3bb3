"""The workspace's DVC settings, written without a `dvc` process, are the ones DVC itself reads."""

from __future__ import annotations

import subprocess
from dataclasses import replace

import pytest

from pipelines import workspace
from tests.support.install import ROOT

pytestmark = pytest.mark.integration


def dvc(settings, *args: str) -> str:
    proc = subprocess.run(
        [workspace.dvc_executable(), *args],
        cwd=settings.workspace,
        env=workspace.command_env(settings),
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.strip()


def test_init_gives_dvc_its_default_remote_and_autostage(tmp_settings, monkeypatch):
    tmp_settings = replace(tmp_settings, project=ROOT)
    monkeypatch.setenv("FLYWHEEL_DVC_REMOTE", str(tmp_settings.home / "first-remote"))
    workspace.init(tmp_settings)
    assert dvc(tmp_settings, "config", "core.autostage") == "true"
    assert dvc(tmp_settings, "remote", "default") == "store"
    assert dvc(tmp_settings, "config", "remote.store.url") == str(tmp_settings.home / "first-remote")

    monkeypatch.setenv("FLYWHEEL_DVC_REMOTE", str(tmp_settings.home / "second-remote"))
    workspace.init(tmp_settings)  # an existing workspace follows a moved remote
    name, url = dvc(tmp_settings, "remote", "list").split()[:2]
    assert (name, url) == ("store", str(tmp_settings.home / "second-remote"))
    assert dvc(tmp_settings, "remote", "default") == "store"
