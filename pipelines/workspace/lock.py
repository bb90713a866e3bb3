"""The one reader of ``dvc.lock``: the md5 DVC recorded for each dependency and output."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from pipelines.workspace.paths import LOCK


def lock_entries(lock: dict[str, Any], stage: str | None = None) -> dict[str, str]:
    """``{path: md5}`` of every dependency and output in a parsed ``dvc.lock`` (of one ``stage`` if given)."""
    stages = lock.get("stages") or {}
    chosen = [stages.get(stage) or {}] if stage else list(stages.values())
    hashes: dict[str, str] = {}
    for body in chosen:
        for entry in [*(body.get("deps") or []), *(body.get("outs") or [])]:
            if isinstance(entry, dict) and "md5" in entry and "path" in entry:
                hashes[entry["path"]] = entry["md5"]
    return hashes


def lock_hashes(workspace: Path, stage: str | None = None) -> dict[str, str]:
    """``{path: md5}`` recorded in the workspace's ``dvc.lock`` (empty when there is none yet)."""
    path = workspace / LOCK
    if not path.exists():
        return {}
    return lock_entries(yaml.safe_load(path.read_text()) or {}, stage)


def lock_at_commit(workspace: Path, commit: str | None) -> dict[str, str]:
    """``{path: md5}`` from ``dvc.lock`` as committed at ``commit`` in the workspace's git history."""
    if not commit:
        return {}
    proc = subprocess.run(
        ["git", "-C", str(workspace), "show", f"{commit}:{LOCK}"], capture_output=True, text=True
    )
    if proc.returncode != 0:
        return {}
    return lock_entries(yaml.safe_load(proc.stdout) or {})
