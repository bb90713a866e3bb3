"""Train: fit the tabular network on the train features, early-stopped on validation PR-AUC.

The pure part is :func:`fit`: batches sliced from tensors with one
``torch.randperm`` per epoch, AdamW, class-weighted BCE, early stopping that
restores the best weights. It uses the hardware it is given (:class:`Placement`):
on CUDA bf16 autocast, the tensors resident on the GPU when they fit in its free
memory, ``train.gpu_batch_size`` and optionally ``torch.compile``; on the CPU all
cores; across processes DDP (:mod:`pipelines.train.distributed`). It can continue from a
:class:`FitState` and hands one to ``on_state`` after every epoch.

:func:`run` is the DVC stage: it loads ``data/features``, resumes from the last
checkpoint of the same inputs (:mod:`pipelines.train.checkpoint`) in the same MLflow run,
tracks the run in MLflow (params, datasets, system metrics, per-epoch metrics, the
learning curve, lineage tags, the pyfunc model) and writes ``models/model/``,
``metrics/train.json`` and ``plots/train_curve.json``. With ``train.devices > 1``
it re-launches itself under ``torchrun``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from pipelines.common import tracking as tracking_connection
from pipelines.common.errors import FlywheelError
from pipelines.common.io import write_json
from pipelines.common.tracking import MAX_TAG
from pipelines.evaluate.metrics import best_f1_threshold, ranking_metrics
from pipelines.featurize.preprocess import Preprocessor
from pipelines.train import distributed as train_ddp
from pipelines.train import tracking
from pipelines.train.checkpoint import CheckpointStore, capture_rng, fingerprint, restore_rng
from pipelines.train.distributed import SINGLE, Group
from pipelines.train.network import TabularNet, build_net, save_model_files, write_model_json
from pipelines.workspace.lock import lock_hashes
from pipelines.workspace.paths import (
    MODEL_DIR,
    PREPROCESS_SPEC,
    TRAIN_CURVE,
    TRAIN_METRICS,
    WINDOW,
    features_file,
    split_file,
)

if TYPE_CHECKING:
    import matplotlib.figure
    from mlflow import ActiveRun
    from mlflow.models.model import ModelInfo
    from mlflow.models.signature import ModelSignature

    from pipelines.common.config import Params, Schema, TrainConfig
    from pipelines.common.settings import Settings

log = logging.getLogger(__name__)

MAX_POS_WEIGHT = 20.0
EVAL_BATCH = 65536
RESIDENT_SHARE = 0.5  # tensors stay on the GPU when they take at most this share of its free memory


class TrainError(FlywheelError):
    """Training cannot start or produced no usable model."""


# -- data ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingData:
    """Model tensors of the train and valid splits (numeric float32, categorical int64, target float32)."""

    train_numeric: torch.Tensor
    train_categorical: torch.Tensor
    train_target: torch.Tensor
    valid_numeric: torch.Tensor
    valid_categorical: torch.Tensor
    valid_target: torch.Tensor

    @classmethod
    def from_frames(cls, train: pd.DataFrame, valid: pd.DataFrame, pre: Preprocessor) -> TrainingData:
        """Tensors from the ``data/features`` tables, in the preprocessor's feature order."""
        tensors = [
            torch.from_numpy(np.ascontiguousarray(a))
            for a in (*pre.split_features(train), *pre.split_features(valid))
        ]
        return cls(*tensors)

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> TrainingData:
        return TrainingData(*(fn(getattr(self, f.name)) for f in fields(self)))

    def to(self, device: torch.device) -> TrainingData:
        """The same tensors on ``device``."""
        return self._map(lambda t: t.to(device))

    def pinned(self) -> TrainingData:
        """The same tensors in page-locked host memory (fast copies to the GPU)."""
        return self._map(lambda t: t.pin_memory())

    def shard(self, rank: int, world_size: int) -> TrainingData:
        """Every ``world_size``-th train row from ``rank`` on, the same count on every rank; valid as is."""
        if world_size == 1:
            return self
        stop = self.n_train // world_size * world_size
        train = (
            t[rank:stop:world_size].contiguous()
            for t in (self.train_numeric, self.train_categorical, self.train_target)
        )
        return TrainingData(*train, self.valid_numeric, self.valid_categorical, self.valid_target)

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, f.name).nbytes for f in fields(self))

    @property
    def n_train(self) -> int:
        return len(self.train_target)

    @property
    def n_valid(self) -> int:
        return len(self.valid_target)


def load_training_data(workspace: Path) -> tuple[TrainingData, Preprocessor]:
    """Read ``data/features/{train,valid}.parquet`` and ``preprocess.json`` of the workspace."""
    spec = workspace / PREPROCESS_SPEC
    if not spec.exists():
        raise TrainError(f"{spec} not found; expected the featurize stage to have written data/features")
    pre = Preprocessor.load(spec)
    frames = [pd.read_parquet(workspace / features_file(name)) for name in ("train", "valid")]
    return TrainingData.from_frames(*frames, pre), pre


def feature_files(workspace: Path) -> list[Path]:
    """The files training reads: what a checkpoint's fingerprint hashes."""
    return [
        workspace / features_file("train"),
        workspace / features_file("valid"),
        workspace / PREPROCESS_SPEC,
    ]


# -- the hardware ------------------------------------------------------------------------------


def select_device(preference: str) -> torch.device:
    """CUDA when present and allowed by ``train.device``, else CPU (all cores)."""
    if preference != "cpu" and torch.cuda.is_available():
        return torch.device("cuda")
    if preference == "cuda":
        log.warning("train.device is 'cuda' but CUDA is not available; training on CPU")
    torch.set_num_threads(os.cpu_count() or 1)
    return torch.device("cpu")


@dataclass(frozen=True)
class Placement:
    """How :func:`fit` uses its device."""

    device: torch.device
    batch_size: int
    bf16: bool = False  # forward and loss under CUDA bf16 autocast
    resident: bool = True  # all tensors on the device; else pinned on the host, copied per batch
    compile: bool = False  # torch.compile the training module

    def describe(self) -> dict[str, Any]:
        return {
            "device": str(self.device),
            "batch_size": self.batch_size,
            "bf16": self.bf16,
            "resident": self.resident,
            "compile": self.compile,
        }


def plan_placement(
    cfg: TrainConfig,
    device: torch.device,
    data_bytes: int,
    free_bytes: int | None = None,
    bf16_supported: bool | None = None,
) -> Placement:
    """CPU: ``train.batch_size``, fp32. CUDA: ``train.gpu_batch_size``, bf16 where supported,
    the tensors resident when they take at most ``RESIDENT_SHARE`` of the free GPU memory.

    ``free_bytes`` and ``bf16_supported`` are read from the device when not given.
    """
    if device.type != "cuda":
        return Placement(device, cfg.batch_size, compile=cfg.compile)
    if free_bytes is None:
        free_bytes = torch.cuda.mem_get_info(device)[0]
    if bf16_supported is None:
        bf16_supported = torch.cuda.is_bf16_supported()
    resident = data_bytes <= RESIDENT_SHARE * free_bytes
    if not resident:
        log.warning(
            "training tensors (%.1f GB) exceed %.0f%% of the free GPU memory (%.1f GB): "
            "kept in pinned host memory, copied per batch",
            data_bytes / 1e9,
            100 * RESIDENT_SHARE,
            free_bytes / 1e9,
        )
    return Placement(device, cfg.gpu_batch_size, bool(bf16_supported), resident, cfg.compile)


def place(data: TrainingData, placement: Placement) -> TrainingData:
    """The tensors where ``placement`` wants them."""
    if placement.resident:
        return data.to(placement.device)
    return data.to(torch.device("cpu")).pinned()


def training_module(model: nn.Module, placement: Placement, group: Group) -> nn.Module:
    """What the training passes call: ``model`` wrapped in DDP across processes, then compiled if
    asked. It shares ``model``'s parameters; validation and checkpoints use ``model`` itself."""
    net = model
    if group.distributed:
        from torch.nn.parallel import DistributedDataParallel

        ids = [placement.device.index] if placement.device.type == "cuda" else None
        net = DistributedDataParallel(model, device_ids=ids)
    if placement.compile:
        net = torch.compile(net)
    return net


# -- the training loop -------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (CPU and CUDA) from ``train.seed``."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def positive_weight(target: torch.Tensor, cap: float = MAX_POS_WEIGHT) -> float:
    """``negatives / positives`` of the train target, capped (1 when there are no positives)."""
    positives = float(target.sum())
    negatives = float(len(target)) - positives
    return min(cap, negatives / positives) if positives > 0 else 1.0


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW with ``train.learning_rate`` and ``train.weight_decay``."""
    return torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)


def _autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module,
    numeric: torch.Tensor,
    categorical: torch.Tensor,
    target: torch.Tensor,
    batch_size: int,
    copy_to: torch.device | None = None,
    bf16: bool = False,
) -> torch.Tensor:
    """One pass over shuffled batches; the mean loss stays on the device (no per-batch sync).

    Batches are sliced where the tensors are and copied to ``copy_to`` when given (data
    too large to be resident on the GPU); ``bf16`` runs forward and loss under bf16 autocast.
    """
    model.train()
    n = len(target)
    device = copy_to or target.device
    order = torch.randperm(n, device=target.device)
    total = torch.zeros((), device=device)
    amp = _autocast(device, bf16)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        x_num, x_cat, y = numeric[idx], categorical[idx], target[idx]
        if copy_to is not None:
            x_num, x_cat, y = (t.to(copy_to, non_blocking=True) for t in (x_num, x_cat, y))
        with amp:
            loss = loss_fn(model(x_num, x_cat), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach() * len(idx)
    return total / n


@torch.no_grad()
def predict_logits(
    model: nn.Module, numeric: torch.Tensor, categorical: torch.Tensor, device: torch.device | None = None
) -> torch.Tensor:
    """Logits in evaluation mode (fp32), in large chunks, computed on ``device`` (default: the data's)."""
    model.eval()
    device = device or numeric.device
    chunks = [
        model(numeric[i : i + EVAL_BATCH].to(device), categorical[i : i + EVAL_BATCH].to(device))
        for i in range(0, len(numeric), EVAL_BATCH)
    ]
    return torch.cat(chunks) if chunks else torch.empty(0, device=device)


@dataclass(frozen=True)
class EpochStats:
    """What one epoch did."""

    epoch: int
    train_loss: float
    valid_loss: float
    valid_pr_auc: float
    valid_roc_auc: float
    train_seconds: float

    @property
    def score(self) -> float:
        """The early-stopping score: PR-AUC, or minus the loss when PR-AUC is undefined."""
        return self.valid_pr_auc if np.isfinite(self.valid_pr_auc) else -self.valid_loss


@dataclass
class FitResult:
    """The outcome of :func:`fit`; the model holds the best weights."""

    history: list[EpochStats]
    best_epoch: int
    best_valid_proba: np.ndarray
    train_samples: int
    train_seconds: float
    device: str
    pos_weight: float
    placement: Placement | None = None
    world_size: int = 1
    resumed_from: int = 0  # epochs restored from a checkpoint (0: trained from scratch)

    @property
    def best(self) -> EpochStats:
        return self.history[self.best_epoch - 1]

    @property
    def samples_per_s(self) -> float:
        """Training throughput, validation excluded."""
        return self.train_samples / self.train_seconds if self.train_seconds > 0 else float("nan")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def validate(
    model: nn.Module, data: TrainingData, loss_fn: nn.Module, device: torch.device | None = None
) -> tuple[float, float, float, np.ndarray]:
    """``(valid_loss, valid_pr_auc, valid_roc_auc, valid_proba)`` of the current weights."""
    logits = predict_logits(model, data.valid_numeric, data.valid_categorical, device)
    valid_loss = float(loss_fn(logits, data.valid_target.to(logits.device)))
    proba = torch.sigmoid(logits).double().cpu().numpy()
    pr_auc, roc_auc = ranking_metrics(data.valid_target.cpu().numpy(), proba)
    return valid_loss, pr_auc, roc_auc, proba


@dataclass(frozen=True)
class _Best:
    epoch: int = 0
    score: float = -float("inf")
    state: dict[str, torch.Tensor] = field(default_factory=dict)
    proba: np.ndarray = field(default_factory=lambda: np.empty(0))

    def update(self, stats: EpochStats, model: nn.Module, proba: np.ndarray) -> _Best:
        if stats.score <= self.score:
            return self
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return _Best(stats.epoch, stats.score, state, proba)


@dataclass(frozen=True)
class FitState:
    """Where :func:`fit` stands after ``epoch`` epochs: with the RNG states, enough to continue exactly.

    ``model`` and ``optimizer`` are the live state dicts while ``on_state`` runs: save or copy them there.
    """

    epoch: int
    history: tuple[EpochStats, ...]
    best: _Best
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    rng: dict[str, Any] | None = None

    def to_payload(self) -> dict[str, Any]:
        """Tensors, numbers, strings, lists and dicts only: loadable with ``weights_only=True``."""
        best = {
            "epoch": self.best.epoch,
            "score": self.best.score,
            "state": self.best.state,
            "proba": torch.from_numpy(np.ascontiguousarray(self.best.proba)),
        }
        return {
            "epoch": self.epoch,
            "history": [asdict(s) for s in self.history],
            "best": best,
            "model": self.model,
            "optimizer": self.optimizer,
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any], rank: int = 0) -> FitState:
        """The state of a checkpoint, with the RNG states of process ``rank``."""
        b = payload["best"]
        best = _Best(int(b["epoch"]), float(b["score"]), b["state"], b["proba"].numpy())
        rngs = payload.get("rng") or []
        return cls(
            int(payload["epoch"]),
            tuple(EpochStats(**s) for s in payload["history"]),
            best,
            payload["model"],
            payload["optimizer"],
            rngs[rank] if rank < len(rngs) else None,
        )


def _finished(epoch: int, best_epoch: int, cfg: TrainConfig) -> bool:
    """All epochs done, or ``patience`` epochs without a better validation score."""
    return epoch >= cfg.epochs or epoch - best_epoch >= cfg.patience


def run_epoch(
    net: nn.Module,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    loss_fn: nn.Module,
    data: TrainingData,
    placement: Placement,
    epoch: int,
    group: Group = SINGLE,
) -> tuple[EpochStats, np.ndarray]:
    """Train one epoch with ``net`` (timed, one sync) then validate ``model`` on rank 0 (not timed)."""
    start = time.perf_counter()
    loss = train_epoch(
        net,
        opt,
        loss_fn,
        data.train_numeric,
        data.train_categorical,
        data.train_target,
        placement.batch_size,
        None if placement.resident else placement.device,
        placement.bf16,
    )
    train_loss = float(group.mean(loss))  # the one sync point of the epoch
    _sync(placement.device)
    seconds = time.perf_counter() - start
    if not group.is_main:  # rank 0 validates and decides for everyone
        return EpochStats(epoch, train_loss, math.nan, math.nan, math.nan, seconds), np.empty(0)
    valid_loss, pr_auc, roc_auc, proba = validate(model, data, loss_fn, placement.device)
    return EpochStats(epoch, train_loss, valid_loss, pr_auc, roc_auc, seconds), proba


def _restore(model: nn.Module, opt: torch.optim.Optimizer, resume: FitState | None) -> tuple[list, _Best]:
    if resume is None:
        return [], _Best()
    model.load_state_dict(resume.model)
    opt.load_state_dict(resume.optimizer)
    if resume.rng is not None:
        restore_rng(resume.rng)
    return list(resume.history), resume.best


def fit(
    model: TabularNet,
    data: TrainingData,
    cfg: TrainConfig,
    device: torch.device,
    on_epoch: Callable[[EpochStats], None] | None = None,
    *,
    resume: FitState | None = None,
    on_state: Callable[[FitState], None] | None = None,
    group: Group = SINGLE,
) -> FitResult:
    """Train ``model`` in place, early-stopped on validation PR-AUC; the best weights are restored.

    ``resume`` continues after its epoch with its weights, optimizer, history and RNG
    states; ``on_state`` receives the state after every epoch (before ``on_epoch``).
    Across processes (``group``) each trains on its shard and rank 0's early-stopping
    decision holds for all.
    """
    placement = plan_placement(cfg, device, data.nbytes)
    weight = positive_weight(data.train_target)
    n_train = data.n_train // group.world_size * group.world_size
    data = place(data.shard(group.rank, group.world_size), placement)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(weight, device=device))
    opt = make_optimizer(model.to(device), cfg)
    history, best = _restore(model, opt, resume)
    net = training_module(model, placement, group)
    epoch = resumed = len(history)
    while not group.agree(_finished(epoch, best.epoch, cfg)):
        epoch += 1
        stats, proba = run_epoch(net, model, opt, loss_fn, data, placement, epoch, group)
        history.append(stats)
        if group.is_main:
            best = best.update(stats, model, proba)
        if on_state is not None:
            on_state(FitState(epoch, tuple(history), best, model.state_dict(), opt.state_dict()))
        if on_epoch is not None:
            on_epoch(stats)
    if best.state:
        model.load_state_dict(best.state)
    seconds = sum(s.train_seconds for s in history)
    return FitResult(
        history,
        best.epoch,
        best.proba,
        n_train * len(history),
        seconds,
        device.type,
        weight,
        placement,
        group.world_size,
        resumed,
    )


# -- MLflow ------------------------------------------------------------------------------------


def configure_mlflow(settings: Settings, experiment: str) -> str:
    """Point MLflow at ``settings.tracking_uri`` and make sure the experiment exists; return its id."""
    return tracking_connection.ensure_experiment(settings, experiment)


def git_commit(project: Path) -> str:
    """``git rev-parse HEAD`` of the project, or ``"unknown"``."""
    try:
        out = subprocess.run(
            ["git", "-C", str(project), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def window_tag(window: dict[str, Any], limit: int = MAX_TAG) -> str:
    """The snapshot window as compact JSON; list values become counts when it would not fit in a tag."""
    text = json.dumps(window, sort_keys=True, separators=(",", ":"))
    if len(text) <= limit:
        return text
    short = {
        k: (f"{len(v)} items, see lineage/window.json" if isinstance(v, list) else v)
        for k, v in window.items()
    }
    return json.dumps(short, sort_keys=True, separators=(",", ":"))[:limit]


def lineage_tags(params: Params, workspace: Path, settings: Settings, env: dict[str, str]) -> dict[str, str]:
    """Tags tying the run to its code, data and orchestrator run."""
    tags = {
        "flywheel.stage": "train",
        "flywheel.schema": params.schema.name,
        "flywheel.git_commit": git_commit(settings.project),
    }
    for var, tag in (("AIRFLOW_CTX_DAG_ID", "airflow.dag_id"), ("AIRFLOW_CTX_DAG_RUN_ID", "airflow.run_id")):
        if env.get(var):
            tags[tag] = env[var]
    if (workspace / WINDOW).exists():
        tags["flywheel.data_window"] = window_tag(json.loads((workspace / WINDOW).read_text()))
    for path, md5 in lock_hashes(workspace, "featurize").items():
        tags[f"flywheel.dvc.{Path(path).name}_md5"] = md5
    return tags


def run_params(params: Params, data: TrainingData) -> dict[str, Any]:
    """The MLflow params of a training run: every ``train`` key, the schema name, row counts."""
    train = {
        f"train.{k}": (list(v) if isinstance(v, tuple) else v) for k, v in params.train.model_dump().items()
    }
    return {
        **train,
        "schema": params.schema.name,
        "n_train": data.n_train,
        "n_valid": data.n_valid,
        "train_positive_rate": round(float(data.train_target.float().mean()), 6),
    }


def model_signature(schema: Schema) -> ModelSignature:
    """The pyfunc signature: raw feature columns in, ``probability``/``label`` out.

    Numeric columns are typed ``Any`` so raw rows in any of their real forms
    (nullable ``Int64`` with NA, floats with NaN, plain integers from JSON) pass
    MLflow's schema enforcement; the preprocessor coerces them. Optional schema
    columns are optional inputs.
    """
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec
    from mlflow.types.schema import Schema as MlflowSchema

    inputs = [
        ColSpec(AnyType() if c.is_numeric else "string", c.name, required=c.required) for c in schema.columns
    ]
    outputs = [ColSpec("double", "probability"), ColSpec("long", "label")]
    return ModelSignature(inputs=MlflowSchema(inputs), outputs=MlflowSchema(outputs))


def input_example(workspace: Path, schema: Schema, rows: int = 5) -> pd.DataFrame:
    """The first raw train rows, feature columns only, in JSON-friendly dtypes."""
    raw = pd.read_parquet(workspace / split_file("train"), columns=list(schema.feature_names)).head(rows)
    numeric = {c.name: pd.to_numeric(raw[c.name]).astype("float64") for c in schema.numeric}
    return raw.assign(**numeric).astype({c.name: object for c in schema.categorical})


def pip_requirements() -> list[str]:
    """Exact versions of what the pyfunc imports when it is loaded."""
    import cloudpickle
    import mlflow
    import pyarrow

    return [
        f"mlflow=={mlflow.__version__}",
        f"torch=={torch.__version__.split('+')[0]}",
        f"numpy=={np.__version__}",
        f"pandas=={pd.__version__}",
        f"pyarrow=={pyarrow.__version__}",
        f"cloudpickle=={cloudpickle.__version__}",
    ]


def log_pyfunc(artifacts: dict[str, str], schema: Schema, example: pd.DataFrame) -> ModelInfo:
    """Log the pyfunc model (raw rows in) with its artifacts, signature and pinned requirements."""
    import mlflow

    from pipelines.train.network import FlywheelPyfunc

    return mlflow.pyfunc.log_model(
        name="model",
        python_model=FlywheelPyfunc(),
        artifacts=artifacts,
        signature=model_signature(schema),
        input_example=example,
        pip_requirements=pip_requirements(),
        code_paths=[str(Path(__file__).resolve().parent)],
    )


def learning_curve(history: list[EpochStats]) -> matplotlib.figure.Figure:
    """Train/valid loss and valid PR-AUC per epoch."""
    from matplotlib.figure import Figure  # no pyplot: rendered by Agg, no global figure state

    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    epochs = [s.epoch for s in history]
    ax.plot(epochs, [s.train_loss for s in history], marker="o", label="train loss")
    ax.plot(epochs, [s.valid_loss for s in history], marker="o", label="valid loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax2 = ax.twinx()
    ax2.plot(epochs, [s.valid_pr_auc for s in history], color="tab:green", marker="s", label="valid PR-AUC")
    ax2.set_ylabel("PR-AUC")
    fig.legend(loc="upper right")
    fig.tight_layout()
    return fig


# -- the stage ---------------------------------------------------------------------------------


def final_metrics(result: FitResult, threshold: float, f1: float) -> dict[str, float]:
    """The run's summary metrics: best-epoch validation metrics, threshold, throughput."""
    best = result.best
    metrics = {
        "best_valid_pr_auc": best.valid_pr_auc,
        "best_valid_roc_auc": best.valid_roc_auc,
        "best_valid_loss": best.valid_loss,
        "valid_f1": f1,
        "threshold": threshold,
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "samples_per_s": result.samples_per_s,
    }
    if result.device == "cuda":
        metrics["gpu_peak_memory_gb"] = torch.cuda.max_memory_allocated() / 1e9
    return metrics


def _log_epoch(stats: EpochStats) -> None:
    import mlflow

    values = {
        "train_loss": stats.train_loss,
        "valid_loss": stats.valid_loss,
        "valid_pr_auc": stats.valid_pr_auc,
        "valid_roc_auc": stats.valid_roc_auc,
    }
    mlflow.log_metrics(values, step=stats.epoch)
    log.info(
        "epoch %d: train_loss %.4f valid_loss %.4f valid_pr_auc %.4f valid_roc_auc %.4f (%.1fs)",
        stats.epoch,
        *values.values(),
        stats.train_seconds,
    )


def log_missing_epochs(run_id: str, history: tuple[EpochStats, ...]) -> None:
    """Log the restored epochs the run lacks (a kill between a checkpoint and its logging)."""
    from mlflow import MlflowClient

    logged = {m.step for m in MlflowClient().get_metric_history(run_id, "valid_pr_auc")}
    for stats in history:
        if stats.epoch not in logged:
            _log_epoch(stats)


def write_reports(workspace: Path, result: FitResult, metrics: dict[str, float]) -> None:
    """``metrics/train.json`` and ``plots/train_curve.json``."""
    write_json(
        workspace / TRAIN_METRICS, {**metrics, "device": result.device, "pos_weight": result.pos_weight}
    )
    curve = [
        {
            "epoch": s.epoch,
            "train_loss": s.train_loss,
            "valid_loss": s.valid_loss,
            "valid_pr_auc": s.valid_pr_auc,
        }
        for s in result.history
    ]
    write_json(workspace / TRAIN_CURVE, curve)


def train_model(
    params: Params,
    data: TrainingData,
    pre: Preprocessor,
    group: Group = SINGLE,
    resume: FitState | None = None,
    on_state: Callable[[FitState], None] | None = None,
    on_epoch: Callable[[EpochStats], None] | None = _log_epoch,
) -> tuple[TabularNet, FitResult, float, float]:
    """Seed, build and fit the network; choose the F1-maximizing threshold on validation (rank 0)."""
    cfg = params.train
    seed_everything(cfg.seed)
    net = build_net(pre, cfg.hidden, cfg.dropout, cfg.max_embedding_dim)
    if group.distributed:  # the same initial weights everywhere, then each rank its own shuffles
        torch.manual_seed(cfg.seed + group.rank)
    device = group.device if group.distributed else select_device(cfg.device)
    result = fit(net, data, cfg, device, on_epoch, resume=resume, on_state=on_state, group=group)
    threshold, f1 = (
        best_f1_threshold(data.valid_target.cpu().numpy(), result.best_valid_proba)
        if group.is_main
        else (0.5, 0.0)
    )
    return net.cpu(), result, threshold, f1


def checkpoint_store(
    params: Params, workspace: Path, settings: Settings, world_size: int = 1
) -> CheckpointStore:
    """``$FLYWHEEL_HOME/checkpoints/<fingerprint of the train params and the features>``."""
    key = fingerprint(params.train, feature_files(workspace), world_size)
    return CheckpointStore.under(settings.home, key)


def _checkpointer(store: CheckpointStore, group: Group, run_id: str | None) -> Callable[[FitState], None]:
    def save(state: FitState) -> None:
        rng = group.gather(capture_rng())  # every rank's generators, for an exact continuation
        if group.is_main:
            store.save({**state.to_payload(), "rng": rng, "mlflow_run_id": run_id})

    return save


def _run_exists(run_id: str, experiment_id: str) -> bool:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        found = MlflowClient().get_run(run_id)
    except MlflowException:
        return False
    return found.info.experiment_id == experiment_id and found.info.lifecycle_stage == "active"


def open_run(params: Params, workspace: Path, settings: Settings, run_id: str | None) -> ActiveRun:
    """Start the training run, or continue ``run_id`` (a retry after a kill), with lineage tags
    and, when enabled, MLflow's system metrics."""
    import mlflow

    experiment_id = configure_mlflow(settings, params.mlflow.experiment)
    tags = lineage_tags(params, workspace, settings, dict(os.environ))
    system = tracking.system_metrics_enabled(params.mlflow, os.environ)
    if system:
        tracking.configure_system_metrics(params.mlflow)
    if run_id and _run_exists(run_id, experiment_id):
        return mlflow.start_run(run_id=run_id, tags=tags, log_system_metrics=system)
    if run_id:
        log.warning("MLflow run %s of the checkpoint is gone; continuing in a new run", run_id)
    run_name = f"train-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    return mlflow.start_run(
        experiment_id=experiment_id, run_name=run_name, tags=tags, log_system_metrics=system
    )


def _train_and_log(
    params: Params,
    workspace: Path,
    data: TrainingData,
    pre: Preprocessor,
    run_id: str,
    group: Group,
    resume: FitState | None,
    store: CheckpointStore,
) -> dict[str, Any]:
    import mlflow

    save = _checkpointer(store, group, run_id)
    net, result, threshold, f1 = train_model(params, data, pre, group, resume, save)
    meta = {
        "threshold": threshold,
        "schema": params.schema.name,
        "mlflow_run_id": run_id,
        "device": result.device,
        "epochs_run": len(result.history),
        "best_epoch": result.best_epoch,
        "world_size": result.world_size,
    }
    artifacts = save_model_files(workspace / MODEL_DIR, net, pre, meta)
    info = log_pyfunc(artifacts, params.schema, input_example(workspace, params.schema))
    model_json = json.loads(Path(artifacts["model_json"]).read_text())
    write_model_json(
        workspace / MODEL_DIR, {**model_json, "model_uri": info.model_uri, "model_id": info.model_id}
    )
    metrics = final_metrics(result, threshold, f1)
    mlflow.log_metrics(metrics, model_id=info.model_id)
    mlflow.log_figure(learning_curve(result.history), "plots/learning_curve.png")
    write_reports(workspace, result, metrics)
    return {
        "metrics": metrics,
        "model_uri": info.model_uri,
        "model_id": info.model_id,
        "device": result.device,
        "placement": result.placement.describe() if result.placement else None,
        "world_size": result.world_size,
        "resumed_from_epoch": result.resumed_from or None,
    }


def _tracked(
    params: Params,
    workspace: Path,
    settings: Settings,
    data: TrainingData,
    pre: Preprocessor,
    group: Group,
    store: CheckpointStore,
    saved: dict[str, Any] | None,
) -> dict[str, Any]:
    """Rank 0: train inside the MLflow run (the checkpoint's run when resuming) and log everything."""
    import mlflow

    resume = FitState.from_payload(saved, group.rank) if saved else None
    run_id = (saved or {}).get("mlflow_run_id") or store.read_run_id()
    with open_run(params, workspace, settings, run_id) as active:
        run_id = active.info.run_id
        store.write_run_id(run_id)
        mlflow.log_params(run_params(params, data))  # the same values again on a resumed run
        if resume is not None:
            log.info(
                "resuming from the checkpoint after epoch %d in %s (MLflow run %s)",
                resume.epoch,
                store.directory,
                run_id,
            )
            mlflow.set_tag("flywheel.resumed_from_epoch", str(resume.epoch))
            log_missing_epochs(run_id, resume.history)
        if (workspace / WINDOW).exists():
            mlflow.log_artifact(str(workspace / WINDOW), "lineage")
        tracking.log_split_datasets(workspace, params.schema, ("train", "valid"))
        summary = _train_and_log(params, workspace, data, pre, run_id, group, resume, store)
    log.info("trained %s: %s", active.info.run_name, summary["metrics"])
    return {
        **summary,
        "mlflow_run_id": run_id,
        "run_name": active.info.run_name,
        "n_train": data.n_train,
        "n_valid": data.n_valid,
    }


def train_stage(params: Params, workspace: Path, settings: Settings, group: Group = SINGLE) -> dict[str, Any]:
    """The stage in this process: resume from a checkpoint of the same inputs if there is one;
    rank 0 tracks and writes; the checkpoints are removed once the outputs are written."""
    data, pre = load_training_data(workspace)
    store = checkpoint_store(params, workspace, settings, group.world_size)
    saved = store.load()
    if not group.is_main:
        train_model(
            params,
            data,
            pre,
            group,
            FitState.from_payload(saved, group.rank) if saved else None,
            _checkpointer(store, group, None),
            on_epoch=None,
        )
        return {}
    summary = _tracked(params, workspace, settings, data, pre, group, store, saved)
    store.clear()
    store.prune_siblings()
    return {**summary, "checkpoints": str(store.directory)}


def run(params: Params, settings: Settings, workspace: Path) -> dict[str, Any]:
    """Train on the workspace's features, log everything to MLflow, write the model and reports.

    With ``train.devices > 1`` this re-launches the stage under torchrun, one process per GPU.
    """
    cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    nproc = train_ddp.processes_for(params.train, cuda)
    if nproc == 1:
        return train_stage(params, workspace, settings)
    if not (workspace / PREPROCESS_SPEC).exists():
        raise TrainError(
            f"{workspace / PREPROCESS_SPEC} not found; expected the featurize stage to have written data/features"
        )
    return train_ddp.launch(nproc, workspace, settings, params)
