"""Every path in the DVC workspace, relative to its root, and where DVC keeps content.

Stages write and read these paths; ``dvc.yaml`` names the same ones as outs and deps.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipelines.common.settings import Settings

EVENTS = Path("data/snapshot/events.parquet")
WINDOW = Path("data/snapshot/window.json")
SPLIT_DIR = Path("data/split")
FEATURES_DIR = Path("data/features")
PREPROCESS_SPEC = FEATURES_DIR / "preprocess.json"
MODEL_DIR = Path("models/model")
MODEL_JSON = MODEL_DIR / "model.json"
MODEL_CODE = Path("code/model_factory.py")  # the network factory's source, a dependency of train
TRAIN_METRICS = Path("metrics/train.json")
TRAIN_CURVE = Path("plots/train_curve.json")
EVALUATE_METRICS = Path("metrics/evaluate.json")
PLOTS_DIR = Path("plots")
LOCK = Path("dvc.lock")
SPLITS = ("train", "valid", "test")


def split_file(split: str) -> Path:
    """``data/split/<split>.parquet``: the raw rows of a split."""
    return SPLIT_DIR / f"{split}.parquet"


def features_file(split: str) -> Path:
    """``data/features/<split>.parquet``: the model inputs of a split."""
    return FEATURES_DIR / f"{split}.parquet"


def remote_url(settings: Settings) -> str:
    """The DVC remote: ``FLYWHEEL_DVC_REMOTE`` (any DVC URL, e.g. ``s3://...``), else a local folder."""
    return os.environ.get("FLYWHEEL_DVC_REMOTE") or str(settings.dvc_remote)


def content_roots(settings: Settings) -> list[str]:
    """Where DVC keeps content: the workspace cache, then the remote."""
    return [str(settings.workspace / ".dvc" / "cache"), remote_url(settings).rstrip("/")]


def git_remote_url() -> str | None:
    """The workspace's shared git remote, ``FLYWHEEL_WORKSPACE_REMOTE`` (any git URL); None: local only.

    With a remote, every task that touches the workspace clones or fetches it first and pushes its
    commit after (:func:`pipelines.workspace.repo.attached`): workers share nothing on disk.
    """
    return os.environ.get("FLYWHEEL_WORKSPACE_REMOTE") or None
