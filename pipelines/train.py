"""Train: fit the tabular network on the train features, early-stopped on validation PR-AUC.

The pure part is :func:`fit`: batches sliced from tensors with one
``torch.randperm`` per epoch, AdamW, class-weighted BCE, early stopping that
restores the best weights. :func:`run` is the DVC stage: it loads
``data/features``, tracks the run in MLflow (params, per-epoch metrics, the
learning curve, lineage tags, the pyfunc model) and writes ``models/model/``,
``metrics/train.json`` and ``plots/train_curve.json``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score
from torch import nn

from pipelines.featurize import FEATURES_DIR, SPEC, SPLIT_DIR, Preprocessor, write_json
from pipelines.model import MODEL_DIR, TabularNet, build_net, save_model_files, write_model_json

if TYPE_CHECKING:
    import matplotlib.figure
    from mlflow.models.model import ModelInfo
    from mlflow.models.signature import ModelSignature

    from pipelines.config import Params, Schema, TrainConfig
    from pipelines.settings import Settings

log = logging.getLogger(__name__)

METRICS = Path("metrics/train.json")
CURVE = Path("plots/train_curve.json")
WINDOW = Path("data/snapshot/window.json")
MAX_POS_WEIGHT = 20.0
EVAL_BATCH = 65536
MAX_TAG_LENGTH = 8000  # MLflow's limit on a tag value


class TrainError(RuntimeError):
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

    def to(self, device: torch.device) -> TrainingData:
        """The same tensors on ``device``."""
        return TrainingData(*(getattr(self, f.name).to(device) for f in fields(self)))

    @property
    def n_train(self) -> int:
        return len(self.train_target)

    @property
    def n_valid(self) -> int:
        return len(self.valid_target)


def load_training_data(workspace: Path) -> tuple[TrainingData, Preprocessor]:
    """Read ``data/features/{train,valid}.parquet`` and ``preprocess.json`` of the workspace."""
    spec = workspace / SPEC
    if not spec.exists():
        raise TrainError(f"{spec} not found; expected the featurize stage to have written data/features")
    pre = Preprocessor.load(spec)
    frames = [pd.read_parquet(workspace / FEATURES_DIR / f"{name}.parquet") for name in ("train", "valid")]
    return TrainingData.from_frames(*frames, pre), pre


# -- the training loop -------------------------------------------------------------------------


def select_device(preference: str) -> torch.device:
    """CUDA when present and allowed by ``train.device``, else CPU (all cores)."""
    if preference != "cpu" and torch.cuda.is_available():
        return torch.device("cuda")
    if preference == "cuda":
        log.warning("train.device is 'cuda' but CUDA is not available; training on CPU")
    torch.set_num_threads(os.cpu_count() or 1)
    return torch.device("cpu")


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


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module,
    numeric: torch.Tensor,
    categorical: torch.Tensor,
    target: torch.Tensor,
    batch_size: int,
) -> torch.Tensor:
    """One pass over shuffled batches; the mean loss stays on the device (no per-batch sync)."""
    model.train()
    n = len(target)
    order = torch.randperm(n, device=target.device)
    total = torch.zeros((), device=target.device)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        loss = loss_fn(model(numeric[idx], categorical[idx]), target[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach() * len(idx)
    return total / n


@torch.no_grad()
def predict_logits(model: nn.Module, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
    """Logits in evaluation mode, in large chunks."""
    model.eval()
    chunks = [
        model(numeric[i : i + EVAL_BATCH], categorical[i : i + EVAL_BATCH])
        for i in range(0, len(numeric), EVAL_BATCH)
    ]
    return torch.cat(chunks) if chunks else torch.empty(0, device=numeric.device)


def ranking_metrics(target: np.ndarray, proba: np.ndarray) -> tuple[float, float]:
    """``(pr_auc, roc_auc)``; NaN when the target holds a single class."""
    if len(np.unique(target)) < 2:
        return float("nan"), float("nan")
    return float(average_precision_score(target, proba)), float(roc_auc_score(target, proba))


def best_f1_threshold(target: np.ndarray, proba: np.ndarray) -> tuple[float, float]:
    """The probability threshold maximizing F1, and that F1 (0.5 and 0 without positives)."""
    if target.sum() == 0:
        return 0.5, 0.0
    precision, recall, thresholds = precision_recall_curve(target, proba)
    f1 = np.divide(
        2 * precision * recall, precision + recall, out=np.zeros_like(precision), where=precision + recall > 0
    )
    best = int(np.argmax(f1[:-1]))
    return float(thresholds[best]), float(f1[best])


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
    model: nn.Module, data: TrainingData, loss_fn: nn.Module
) -> tuple[float, float, float, np.ndarray]:
    """``(valid_loss, valid_pr_auc, valid_roc_auc, valid_proba)`` of the current weights."""
    logits = predict_logits(model, data.valid_numeric, data.valid_categorical)
    valid_loss = float(loss_fn(logits, data.valid_target))
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


def run_epoch(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    loss_fn: nn.Module,
    data: TrainingData,
    batch_size: int,
    epoch: int,
) -> tuple[EpochStats, np.ndarray]:
    """Train one epoch (timed, one sync) then validate (not timed); return the stats and valid probabilities."""
    start = time.perf_counter()
    loss = train_epoch(
        model, opt, loss_fn, data.train_numeric, data.train_categorical, data.train_target, batch_size
    )
    train_loss = float(loss)  # the one sync point of the epoch
    _sync(data.train_target.device)
    seconds = time.perf_counter() - start
    valid_loss, pr_auc, roc_auc, proba = validate(model, data, loss_fn)
    return EpochStats(epoch, train_loss, valid_loss, pr_auc, roc_auc, seconds), proba


def fit(
    model: TabularNet,
    data: TrainingData,
    cfg: TrainConfig,
    device: torch.device,
    on_epoch: Callable[[EpochStats], None] | None = None,
) -> FitResult:
    """Train ``model`` in place, early-stopped on validation PR-AUC; the best weights are restored."""
    data = data.to(device)
    weight = positive_weight(data.train_target)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(weight, device=device))
    opt = make_optimizer(model.to(device), cfg)
    history: list[EpochStats] = []
    best = _Best()
    for epoch in range(1, cfg.epochs + 1):
        stats, proba = run_epoch(model, opt, loss_fn, data, cfg.batch_size, epoch)
        history.append(stats)
        if on_epoch is not None:
            on_epoch(stats)
        best = best.update(stats, model, proba)
        if epoch - best.epoch >= cfg.patience:
            break
    model.load_state_dict(best.state)
    seconds = sum(s.train_seconds for s in history)
    return FitResult(
        history, best.epoch, best.proba, data.n_train * len(history), seconds, device.type, weight
    )


# -- MLflow ------------------------------------------------------------------------------------


def configure_mlflow(settings: Settings, experiment: str) -> str:
    """Point MLflow at ``settings.tracking_uri`` and make sure the experiment exists; return its id.

    With the embedded SQLite store, a new experiment keeps its artifacts under
    ``settings.artifact_root`` (not a ``./mlruns`` relative to the working directory).
    """
    import mlflow

    from pipelines.registry import require_tracking

    require_tracking(settings.tracking_uri)
    mlflow.set_tracking_uri(settings.tracking_uri)
    found = mlflow.get_experiment_by_name(experiment)
    if found is not None:
        return found.experiment_id
    location = settings.artifact_root.as_uri() if settings.tracking_uri.startswith("sqlite:") else None
    return mlflow.create_experiment(experiment, artifact_location=location)


def git_commit(project: Path) -> str:
    """``git rev-parse HEAD`` of the project, or ``"unknown"``."""
    try:
        out = subprocess.run(
            ["git", "-C", str(project), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def featurize_lock_hashes(workspace: Path) -> dict[str, str]:
    """``{out path: md5}`` of the featurize stage in the workspace's ``dvc.lock`` (empty when absent)."""
    import yaml

    lock_path = workspace / "dvc.lock"
    if not lock_path.exists():
        return {}
    lock = yaml.safe_load(lock_path.read_text()) or {}
    outs = ((lock.get("stages") or {}).get("featurize") or {}).get("outs") or []
    return {o["path"]: o["md5"] for o in outs if isinstance(o, dict) and "md5" in o and "path" in o}


def window_tag(window: dict[str, Any], limit: int = MAX_TAG_LENGTH) -> str:
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
    for path, md5 in featurize_lock_hashes(workspace).items():
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
    raw = pd.read_parquet(workspace / SPLIT_DIR / "train.parquet", columns=list(schema.feature_names)).head(
        rows
    )
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

    from pipelines.model import FlywheelPyfunc

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
    return {
        "best_valid_pr_auc": best.valid_pr_auc,
        "best_valid_roc_auc": best.valid_roc_auc,
        "best_valid_loss": best.valid_loss,
        "valid_f1": f1,
        "threshold": threshold,
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "samples_per_s": result.samples_per_s,
    }


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


def write_reports(workspace: Path, result: FitResult, metrics: dict[str, float]) -> None:
    """``metrics/train.json`` and ``plots/train_curve.json``."""
    write_json(workspace / METRICS, {**metrics, "device": result.device, "pos_weight": result.pos_weight})
    curve = [
        {
            "epoch": s.epoch,
            "train_loss": s.train_loss,
            "valid_loss": s.valid_loss,
            "valid_pr_auc": s.valid_pr_auc,
        }
        for s in result.history
    ]
    write_json(workspace / CURVE, curve)


def train_model(
    params: Params, data: TrainingData, pre: Preprocessor
) -> tuple[TabularNet, FitResult, float, float]:
    """Seed, build and fit the network; choose the F1-maximizing threshold on validation."""
    cfg = params.train
    seed_everything(cfg.seed)
    net = build_net(pre, cfg.hidden, cfg.dropout, cfg.max_embedding_dim)
    result = fit(net, data, cfg, select_device(cfg.device), on_epoch=_log_epoch)
    threshold, f1 = best_f1_threshold(data.valid_target.cpu().numpy(), result.best_valid_proba)
    return net.cpu(), result, threshold, f1


def _train_and_log(
    params: Params, workspace: Path, data: TrainingData, pre: Preprocessor, run_id: str
) -> dict[str, Any]:
    import mlflow

    net, result, threshold, f1 = train_model(params, data, pre)
    meta = {
        "threshold": threshold,
        "schema": params.schema.name,
        "mlflow_run_id": run_id,
        "device": result.device,
        "epochs_run": len(result.history),
        "best_epoch": result.best_epoch,
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
    }


def run(params: Params, workspace: Path, settings: Settings) -> dict[str, Any]:
    """Train on the workspace's features, log everything to MLflow, write the model and reports."""
    import mlflow

    data, pre = load_training_data(workspace)
    experiment_id = configure_mlflow(settings, params.mlflow.experiment)
    run_name = f"train-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    tags = lineage_tags(params, workspace, settings, dict(os.environ))
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags) as active:
        mlflow.log_params(run_params(params, data))
        if (workspace / WINDOW).exists():
            mlflow.log_artifact(str(workspace / WINDOW), "lineage")
        summary = _train_and_log(params, workspace, data, pre, active.info.run_id)
    log.info("trained %s: %s", run_name, summary["metrics"])
    return {
        **summary,
        "mlflow_run_id": active.info.run_id,
        "run_name": run_name,
        "n_train": data.n_train,
        "n_valid": data.n_valid,
    }
