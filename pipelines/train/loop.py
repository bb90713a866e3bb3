"""The training loop, pure: tensors in, a fitted network and its history out; no MLflow, no files.

:func:`fit` slices batches from tensors with one ``torch.randperm`` per epoch, uses AdamW and a
class-weighted BCE loss, and stops early on validation PR-AUC, restoring the best weights. It uses
the hardware it is given (:mod:`pipelines.train.placement`) and, across processes, the
:class:`~pipelines.train.distributed.Group`. It can continue from a :class:`FitState` and hands one
to ``on_state`` after every epoch (the stage checkpoints it). :func:`train_model` seeds, builds the
network with the factory it is given, fits it and picks the decision threshold.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch
from torch import nn

from pipelines.common.progress import Progress
from pipelines.evaluate.metrics import best_f1_threshold, ranking_metrics
from pipelines.train.checkpoint import restore_rng
from pipelines.train.distributed import SINGLE, Group
from pipelines.train.objective import Objective
from pipelines.train.placement import Placement, place, plan_placement, select_device, training_module

if TYPE_CHECKING:
    from pipelines.common.config import TrainConfig
    from pipelines.train.data import TrainingData

MAX_POS_WEIGHT = 20.0
EVAL_BATCH = 65536

M = TypeVar("M", bound=nn.Module)


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


def _autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager[Any]:
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
    valid_metric: float | None = None  # other tasks: train.early_stopping_metric on the valid split
    valid_score: float | None = None  # ... oriented so that higher is better

    @property
    def score(self) -> float:
        """The early-stopping score: PR-AUC (another task: its oriented metric), or minus the loss when
        that is undefined."""
        if self.valid_score is not None and np.isfinite(self.valid_score):
            return self.valid_score
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
        """The statistics of the best epoch (the weights the model holds)."""
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
        """This best, or the epoch just run (a copy of its weights) when it scores higher."""
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
    objective: Objective | None = None,
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
    if objective is not None and not objective.binary:
        logits = predict_logits(model, data.valid_numeric, data.valid_categorical, placement.device)
        valid_loss = float(loss_fn(logits, data.valid_target.to(logits.device)))
        value, score, outputs = objective.validate(logits, data.valid_target)
        stats = EpochStats(epoch, train_loss, valid_loss, math.nan, math.nan, seconds, value, score)
        return stats, outputs
    valid_loss, pr_auc, roc_auc, proba = validate(model, data, loss_fn, placement.device)
    return EpochStats(epoch, train_loss, valid_loss, pr_auc, roc_auc, seconds), proba


def _restore(
    model: nn.Module, opt: torch.optim.Optimizer, resume: FitState | None
) -> tuple[list[EpochStats], _Best]:
    if resume is None:
        return [], _Best()
    model.load_state_dict(resume.model)
    opt.load_state_dict(resume.optimizer)
    if resume.rng is not None:
        restore_rng(resume.rng)
    return list(resume.history), resume.best


def fit(
    model: nn.Module,
    data: TrainingData,
    cfg: TrainConfig,
    device: torch.device,
    on_epoch: Callable[[EpochStats], None] | None = None,
    *,
    resume: FitState | None = None,
    on_state: Callable[[FitState], None] | None = None,
    group: Group = SINGLE,
    objective: Objective | None = None,
) -> FitResult:
    """Train ``model`` in place, early-stopped on validation PR-AUC; the best weights are restored.

    ``objective`` (another task than binary): its loss and its early-stopping metric instead.

    ``resume`` continues after its epoch with its weights, optimizer, history and RNG
    states; ``on_state`` receives the state after every epoch (before ``on_epoch``).
    Across processes (``group``) each trains on its shard and rank 0's early-stopping
    decision holds for all.
    """
    placement = plan_placement(cfg, device, data.nbytes)
    binary = objective is None or objective.binary
    weight = positive_weight(data.train_target) if binary else 1.0
    n_train = data.n_train // group.world_size * group.world_size
    loss_fn: nn.Module = (
        nn.BCEWithLogitsLoss(pos_weight=torch.tensor(weight, device=device))
        if binary or objective is None
        else objective.loss(data.train_target, device)
    )
    data = place(data.shard(group.rank, group.world_size), placement)
    opt = make_optimizer(model.to(device), cfg)
    history, best = _restore(model, opt, resume)
    net = training_module(model, placement, group)
    epoch = resumed = len(history)
    shown = Progress("training epochs", cfg.epochs, "epoch", enabled=group.is_main)
    shown.update(resumed)
    while not group.agree(_finished(epoch, best.epoch, cfg)):
        epoch += 1
        stats, proba = run_epoch(net, model, opt, loss_fn, data, placement, epoch, group, objective)
        history.append(stats)
        shown.update(loss=stats.train_loss, valid_pr_auc=stats.valid_pr_auc)
        if group.is_main:
            best = best.update(stats, model, proba)
        if on_state is not None:
            on_state(FitState(epoch, tuple(history), best, model.state_dict(), opt.state_dict()))
        if on_epoch is not None:
            on_epoch(stats)
    shown.close()
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


def train_model(
    cfg: TrainConfig,
    data: TrainingData,
    build: Callable[[], M],
    group: Group = SINGLE,
    resume: FitState | None = None,
    on_state: Callable[[FitState], None] | None = None,
    on_epoch: Callable[[EpochStats], None] | None = None,
    objective: Objective | None = None,
) -> tuple[M, FitResult, float, float]:
    """Seed, build the network with ``build`` and fit it; choose the F1-maximizing threshold on
    validation (rank 0). Returns the network (on the CPU, best weights), the fit, threshold and F1
    (another task: 0.5 and the best validation metric)."""
    seed_everything(cfg.seed)
    net = build()
    if group.distributed:  # the same initial weights everywhere, then each rank its own shuffles
        torch.manual_seed(cfg.seed + group.rank)
    device = group.device if group.distributed else select_device(cfg.device, cfg.cpu_threads)
    result = fit(
        net, data, cfg, device, on_epoch, resume=resume, on_state=on_state, group=group, objective=objective
    )
    if objective is not None and not objective.binary:
        best = result.best.valid_metric if result.history else None
        return net.cpu(), result, 0.5, best if best is not None else math.nan
    threshold, f1 = (
        best_f1_threshold(data.valid_target.cpu().numpy(), result.best_valid_proba)
        if group.is_main
        else (0.5, 0.0)
    )
    return net.cpu(), result, threshold, f1
