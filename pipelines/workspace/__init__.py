"""The DVC workspace: every path in it, init/sync/repro/commit, and the one ``dvc.lock`` reader."""

from pipelines.workspace.repo import (
    StageResult,
    WorkspaceError,
    classify,
    command_env,
    commit,
    dvc_executable,
    init,
    lock_entries,
    lock_hashes,
    repro,
    sync,
)

__all__ = ["StageResult", "WorkspaceError", "classify", "command_env", "commit", "dvc_executable", "init",
           "lock_entries", "lock_hashes", "repro", "sync"]
