"""The DVC workspace: every path in it, init/sync/repro/commit, and the one ``dvc.lock`` reader."""

from pipelines.workspace import paths
from pipelines.workspace.lock import lock_at_commit, lock_entries, lock_hashes
from pipelines.workspace.model_code import module_file
from pipelines.workspace.repo import (
    StageResult,
    WorkspaceError,
    attached,
    checkout,
    classify,
    command_env,
    commit,
    dvc_executable,
    init,
    publish,
    repro,
    run_branch,
    sync,
)

__all__ = [
    "paths",
    "StageResult",
    "WorkspaceError",
    "attached",
    "checkout",
    "classify",
    "command_env",
    "commit",
    "dvc_executable",
    "init",
    "lock_at_commit",
    "lock_entries",
    "lock_hashes",
    "module_file",
    "publish",
    "repro",
    "run_branch",
    "sync",
]
