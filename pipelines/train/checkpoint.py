"""Training checkpoints: one per epoch, outside the DVC outs, for exactly these inputs.

DVC deletes a stage's outs before it reruns the stage, so checkpoints live under
``$FLYWHEEL_HOME/checkpoints/<fingerprint>/``, where the fingerprint hashes the
``train`` params, the number of training processes, and the
location and content of the files training reads (``data/features/{train,valid}.parquet``,
``preprocess.json`` of the workspace): a retry resumes only what it would have
recomputed, and a training in another workspace (``flywheel reproduce``'s clone)
never shares its checkpoints. The
folder holds ``checkpoint.pt`` (replaced atomically after every epoch) and
``run.json`` (the MLflow run id, written when the run starts, so a retry killed
even before its first checkpoint continues the same MLflow run). Checkpoints hold
tensors, numbers, strings, lists and dicts only, and are read with
``torch.load(weights_only=True)``: a checkpoint file can never run code.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from pipelines.common.io import file_digest

if TYPE_CHECKING:
    from pipelines.common.config import TrainConfig

log = logging.getLogger(__name__)

CHECKPOINT_VERSION = 1
CHECKPOINT_FILE = "checkpoint.pt"
RUN_FILE = "run.json"
STALE_AFTER_S = 7 * 86400  # a checkpoint nobody resumed for a week is not going to be

NumpyState = tuple[str, np.ndarray, int, int, float]  # np.random.get_state(legacy=True)


# -- fingerprint ---------------------------------------------------------------------------------


def fingerprint(cfg: TrainConfig, files: Iterable[Path], world_size: int = 1) -> str:
    """A short hash of what training depends on: the train params, the process count, the input files.

    Files are hashed by absolute path and content, so a checkpoint is resumed only in the same workspace and
    for byte-identical features.
    """
    digest = hashlib.sha256()
    head = {
        "version": CHECKPOINT_VERSION,
        "train": cfg.model_dump(mode="json"),
        "world_size": world_size,
    }
    digest.update(json.dumps(head, sort_keys=True).encode())
    for path in sorted(Path(f).resolve() for f in files):
        digest.update(str(path).encode())
        digest.update(file_digest(path).encode())
    return digest.hexdigest()[:20]


# -- random number generators ---------------------------------------------------------------------


def _cuda_in_use() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_initialized()  # type: ignore[no-untyped-call]


def capture_rng() -> dict[str, Any]:
    """The Python, NumPy and PyTorch RNG states (CPU, and the current CUDA device once CUDA is in use).

    Only this process's own GPU: touching every device would open a CUDA context on each of
    them from every DDP process.
    """
    kind, keys, pos, has_gauss, cached = cast(NumpyState, np.random.get_state(legacy=True))
    version, py_state, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state() if _cuda_in_use() else None,
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {
            "version": version,
            "state": torch.tensor(py_state, dtype=torch.int64),
            "gauss_next": gauss_next,
        },
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Put back the states :func:`capture_rng` took (a CUDA one on the current device)."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None:
        if torch.cuda.is_available():
            torch.cuda.set_rng_state(state["cuda"])
        else:
            log.warning("the checkpoint holds a CUDA RNG state but CUDA is not available: not restored")
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss_next"]))


# -- the store --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckpointStore:
    """The checkpoint folder of one set of training inputs."""

    directory: Path

    @classmethod
    def under(cls, home: Path, key: str) -> CheckpointStore:
        """``<home>/checkpoints/<key>``."""
        return cls(home / "checkpoints" / key)

    @property
    def path(self) -> Path:
        """``checkpoint.pt`` in the folder."""
        return self.directory / CHECKPOINT_FILE

    def save(self, payload: dict[str, Any]) -> None:
        """Write ``checkpoint.pt`` atomically: a kill leaves the previous checkpoint or the new one."""
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{CHECKPOINT_FILE}.{os.getpid()}.tmp")
        with tmp.open("wb") as f:
            torch.save({**payload, "version": CHECKPOINT_VERSION}, f)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)

    def load(self) -> dict[str, Any] | None:
        """The last checkpoint (tensors on the CPU), or None when there is none or it is unusable."""
        if not self.path.exists():
            return None
        try:
            payload = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a foreign or damaged file: train from scratch rather than fail
            log.warning("ignoring checkpoint %s: %s", self.path, exc)
            return None
        if not isinstance(payload, dict) or payload.get("version") != CHECKPOINT_VERSION:
            log.warning("ignoring checkpoint %s: not a version %d checkpoint", self.path, CHECKPOINT_VERSION)
            return None
        return payload

    def write_run_id(self, run_id: str) -> None:
        """Remember the MLflow run this training writes to (before the first checkpoint exists)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f".{RUN_FILE}.tmp"
        tmp.write_text(json.dumps({"mlflow_run_id": run_id}))
        tmp.replace(self.directory / RUN_FILE)

    def read_run_id(self) -> str | None:
        """The MLflow run id written by :meth:`write_run_id`, if any."""
        try:
            run_id = json.loads((self.directory / RUN_FILE).read_text()).get("mlflow_run_id")
        except (OSError, ValueError, AttributeError):
            return None
        return str(run_id) if run_id else None

    def clear(self) -> None:
        """Remove the folder: training finished and its outputs are written."""
        shutil.rmtree(self.directory, ignore_errors=True)

    def prune_siblings(self, max_age_s: float = STALE_AFTER_S) -> list[Path]:
        """Remove other checkpoint folders untouched for ``max_age_s`` (trainings never retried)."""
        now, removed = time.time(), []
        for other in self.directory.parent.glob("*"):
            if other != self.directory and other.is_dir() and now - other.stat().st_mtime > max_age_s:
                shutil.rmtree(other, ignore_errors=True)
                removed.append(other)
        return removed
