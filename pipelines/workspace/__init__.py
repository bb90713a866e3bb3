"""The DVC workspace: every path in it, init/sync/repro/commit, and the one ``dvc.lock`` reader."""

from pipelines.workspace import paths
from pipelines.workspace.lock import lock_at_commit, lock_entries, lock_hashes
from pipelines.workspace.model_code import module_file
from pipelines.workspace.repo import (
    StageResult,
    WorkspaceError,
    classify,
    command_env,
    commit,
    dvc_executable,
    init,
    repro,
    sync,
)

__all__ = [
    "paths",
    "StageResult",
    "WorkspaceError",
    "classify",
    "command_env",
    "commit",
    "dvc_executable",
    "init",
    "lock_at_commit",
    "lock_entries",
    "lock_hashes",
    "module_file",
    "repro",
    "sync",
]
