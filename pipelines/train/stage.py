"""Train, the stage's edge: load the features, train with checkpoints, log the run, write the outputs.

:func:`run` is the DVC stage (``flywheel train``): it loads ``data/features``
(:mod:`~pipelines.train.data`), resumes from the last checkpoint of the same inputs
(:mod:`~pipelines.train.checkpoint`) in the same MLflow run, trains the network
(:mod:`~pipelines.train.network`) with the pure loop (:mod:`~pipelines.train.loop`), tracks the run in
MLflow (:mod:`~pipelines.train.tracking`) and writes ``models/model/`` (:mod:`~pipelines.train.model`),
``metrics/train.json`` and ``plots/train_curve.json``. With ``train.devices > 1`` it re-launches
itself under ``torchrun`` (:mod:`~pipelines.train.distributed`), each process running
:func:`train_stage` through :mod:`pipelines.train.worker`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from pipelines.common.io import write_json
from pipelines.train import tracking
from pipelines.train.checkpoint import CheckpointStore, capture_rng, fingerprint
from pipelines.train.data import TrainingData, feature_files, load_training_data, require_features
from pipelines.train.distributed import SINGLE, Group, launch, processes_for
from pipelines.train.loop import EpochStats, FitResult, FitState, train_model
from pipelines.train.model import read_model_json, save_model_files, write_model_json
from pipelines.train.network import check_network, net_factory
from pipelines.train.objective import Objective
from pipelines.workspace import module_file
from pipelines.workspace.paths import MODEL_DIR, TRAIN_CURVE, TRAIN_METRICS

if TYPE_CHECKING:
    from mlflow.models.model import ModelInfo

    from pipelines.common.config import Params, TrainConfig
    from pipelines.common.settings import Settings
    from pipelines.featurize import Preprocessor

log = logging.getLogger(__name__)

WORKER_MODULE = "pipelines.train.worker"  # what torchrun starts in each process (it imports this module)


def run(params: Params, settings: Settings, workspace: Path) -> dict[str, Any]:
    """Train on the workspace's features, log everything to MLflow, write the model and reports.

    With ``train.devices > 1`` this re-launches the stage under torchrun, one process per GPU.
    """
    cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    nproc = processes_for(params.train, cuda)
    if nproc == 1:
        return train_stage(params, settings, workspace)
    require_features(workspace)  # fail here, naming the file, rather than in every worker
    return launch(WORKER_MODULE, nproc, params, settings, workspace)


def train_stage(params: Params, settings: Settings, workspace: Path, group: Group = SINGLE) -> dict[str, Any]:
    """The stage in this process: resume from a checkpoint of the same inputs if there is one;
    rank 0 tracks and writes; the checkpoints are removed once the outputs are written."""
    data, pre = load_training_data(workspace)
    check_network(params.train, pre)  # a bad train.model fails here, before any run or checkpoint
    store = _checkpoint_store(params.train, workspace, settings.home, group.world_size)
    saved = store.load()
    resume = FitState.from_payload(saved, group.rank) if saved else None
    if not group.is_main:
        _train(params.train, data, pre, group, resume, _checkpointer(store, group, None), None)
        return {}
    run_id = (saved or {}).get("mlflow_run_id") or store.read_run_id()
    summary = _tracked(params, settings, workspace, data, pre, group, store, resume, run_id)
    store.clear()
    store.prune_siblings()
    return {**summary, "checkpoints": str(store.directory)}


# -- training ------------------------------------------------------------------------------------


def _train(
    cfg: TrainConfig,
    data: TrainingData,
    pre: Preprocessor,
    group: Group,
    resume: FitState | None,
    on_state: Callable[[FitState], None],
    on_epoch: Callable[[EpochStats], None] | None,
) -> tuple[nn.Module, FitResult, float, float]:
    """The one place the stage builds its network (through :func:`net_factory`) and trains it."""
    build = partial(net_factory(cfg), pre, cfg)
    return train_model(cfg, data, build, group, resume, on_state, on_epoch, Objective.of(pre, cfg))


def _checkpoint_store(cfg: TrainConfig, workspace: Path, home: Path, world_size: int) -> CheckpointStore:
    """``$FLYWHEEL_HOME/checkpoints/<fingerprint of the train params, the features and the factory's
    source>``: a changed network never resumes from another's checkpoint."""
    source = module_file(cfg.model_module) if cfg.model_module else None
    files = [*feature_files(workspace), *([source] if source else [])]
    return CheckpointStore.under(home, fingerprint(cfg, files, world_size))


def _checkpointer(store: CheckpointStore, group: Group, run_id: str | None) -> Callable[[FitState], None]:
    def save(state: FitState) -> None:
        """Checkpoint ``state`` with every rank's RNG states (rank 0 writes)."""
        rng = group.gather(capture_rng())  # every rank's generators, for an exact continuation
        if group.is_main:
            store.save({**state.to_payload(), "rng": rng, "mlflow_run_id": run_id})

    return save


# -- rank 0: tracking and outputs ------------------------------------------------------------------


def _tracked(
    params: Params,
    settings: Settings,
    workspace: Path,
    data: TrainingData,
    pre: Preprocessor,
    group: Group,
    store: CheckpointStore,
    resume: FitState | None,
    run_id: str | None,
) -> dict[str, Any]:
    """Train inside the MLflow run (``run_id``'s when resuming) and log everything."""
    with tracking.open_run(params, settings, workspace, run_id) as active:
        run_id = active.info.run_id
        store.write_run_id(run_id)
        tracking.log_inputs(params, workspace, data)
        if resume is not None:
            log.info(
                "resuming from the checkpoint after epoch %d in %s (MLflow run %s)",
                resume.epoch,
                store.directory,
                run_id,
            )
            tracking.log_resumed(run_id, resume.epoch, resume.history)
        summary = _train_and_log(params, workspace, data, pre, run_id, group, resume, store)
    log.info("trained %s: %s", active.info.run_name, summary["metrics"])
    return {
        **summary,
        "mlflow_run_id": run_id,
        "run_name": active.info.run_name,
        "n_train": data.n_train,
        "n_valid": data.n_valid,
    }


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
    save = _checkpointer(store, group, run_id)
    net, result, threshold, f1 = _train(params.train, data, pre, group, resume, save, tracking.log_epoch)
    info = _save_model(params, workspace, net, pre, result, threshold, run_id)
    metrics = (
        _final_metrics(result, threshold, f1)
        if pre.task == "binary"
        else _task_metrics(result, Objective.of(pre, params.train).stop_metric)
    )
    tracking.log_outcome(metrics, result.history, info.model_id)
    _write_reports(workspace, result, metrics)
    return {
        "metrics": metrics,
        "model_uri": info.model_uri,
        "model_id": info.model_id,
        "device": result.device,
        "placement": result.placement.describe() if result.placement else None,
        "world_size": result.world_size,
        "resumed_from_epoch": result.resumed_from or None,
    }


def _save_model(
    params: Params,
    workspace: Path,
    net: nn.Module,
    pre: Preprocessor,
    result: FitResult,
    threshold: float,
    run_id: str,
) -> ModelInfo:
    """``models/model/`` and the logged pyfunc; ``model.json`` then names the logged model."""
    meta = {
        "threshold": threshold,
        "schema": params.schema.name,
        "mlflow_run_id": run_id,
        "device": result.device,
        "epochs_run": len(result.history),
        "best_epoch": result.best_epoch,
        "world_size": result.world_size,
    }
    model_dir = workspace / MODEL_DIR
    artifacts = save_model_files(model_dir, net, pre, meta)
    example = tracking.input_example(workspace, params.schema)
    info = tracking.log_pyfunc(artifacts, params.schema, example, params.train.model)
    write_model_json(
        model_dir, {**read_model_json(model_dir), "model_uri": info.model_uri, "model_id": info.model_id}
    )
    return info


def _final_metrics(result: FitResult, threshold: float, f1: float) -> dict[str, float]:
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


def _task_metrics(result: FitResult, stop_metric: str) -> dict[str, float]:
    """The summary of a multiclass or regression run: the best epoch's validation metric and loss."""
    best = result.best
    metrics = {
        f"best_valid_{stop_metric}": best.valid_metric if best.valid_metric is not None else math.nan,
        "best_valid_loss": best.valid_loss,
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "samples_per_s": result.samples_per_s,
    }
    if result.device == "cuda":
        metrics["gpu_peak_memory_gb"] = torch.cuda.max_memory_allocated() / 1e9
    return metrics


def _write_reports(workspace: Path, result: FitResult, metrics: dict[str, float]) -> None:
    """``metrics/train.json`` and ``plots/train_curve.json``."""
    write_json(
        workspace / TRAIN_METRICS, {**metrics, "device": result.device, "pos_weight": result.pos_weight}
    )
    curve = [
        {
            "epoch": s.epoch,
            "train_loss": s.train_loss,
            "valid_loss": s.valid_loss,
            **({"valid_pr_auc": s.valid_pr_auc} if np.isfinite(s.valid_pr_auc) else {}),
            **({"valid_metric": s.valid_metric} if s.valid_metric is not None else {}),
        }
        for s in result.history
    ]
    write_json(workspace / TRAIN_CURVE, curve)
