"""Everything a training run logs to MLflow (evaluate logs the splits the same way).

- **The run**: :func:`open_run` starts the training run, or continues the run of a checkpoint,
  in the experiment ``mlflow.experiment`` (the connection is :mod:`pipelines.common.tracking`'s),
  tagged with its lineage (:func:`lineage_tags`: git commit, data window, ``dvc.lock`` hashes,
  Airflow dag and run). :func:`log_inputs` logs the params, the window and the splits;
  :func:`log_epoch` each epoch; :func:`log_pyfunc` the model; :func:`log_outcome` the summary
  metrics and the learning curve.
- **System metrics**: ``mlflow.system_metrics`` in params turns MLflow's own monitor on
  for the training run (CPU, memory, disk, network; GPU where ``nvidia-ml-py`` is
  installed), sampled every ``mlflow.system_metrics_interval_s`` seconds. MLflow's
  ``MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING``, when set, overrides the param (the tests set it off).
- **Datasets**: each raw split of ``data/split/`` is logged with ``mlflow.log_input``
  (contexts ``training``, ``validation``, ``test``). Its source is the DVC path, its
  digest the file's md5 (the hash DVC keeps for it in the ``data/split`` directory
  manifest), and the input's tags carry the path, that md5 and the ``data/split``
  hash recorded in ``dvc.lock``. The MLflow schema comes from the project's schema
  rather than from inferring it over every row.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from pipelines.common.io import file_digest
from pipelines.common.tracking import MAX_TAG, ensure_experiment
from pipelines.workspace import lock_hashes, module_file
from pipelines.workspace.paths import SPLIT_DIR, WINDOW, split_file

if TYPE_CHECKING:
    import matplotlib.figure
    from mlflow import ActiveRun
    from mlflow.data.pandas_dataset import PandasDataset
    from mlflow.models.model import ModelInfo
    from mlflow.models.signature import ModelSignature
    from mlflow.types import Schema as MlflowSchema
    from mlflow.types.schema import AnyType, DataType

    from pipelines.common.config import Column, MlflowConfig, Params, Schema
    from pipelines.common.settings import Settings
    from pipelines.train.data import TrainingData
    from pipelines.train.loop import EpochStats

log = logging.getLogger(__name__)

CONTEXTS = {"train": "training", "valid": "validation", "test": "test"}
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def system_metrics_enabled(cfg: MlflowConfig, env: Mapping[str, str]) -> bool:
    """``mlflow.system_metrics``, unless ``MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING`` says otherwise."""
    raw = (env.get("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING") or "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    return cfg.system_metrics


def configure_system_metrics(cfg: MlflowConfig) -> None:
    """Sample every ``system_metrics_interval_s`` seconds and log every sample (process-wide setting)."""
    import mlflow

    mlflow.set_system_metrics_sampling_interval(cfg.system_metrics_interval_s)  # type: ignore[no-untyped-call]
    mlflow.set_system_metrics_samples_before_logging(1)  # type: ignore[no-untyped-call]


def dataset_schema(schema: Schema) -> MlflowSchema:
    """The MLflow column schema of a raw split: key, event time, features, target."""
    from mlflow.types import ColSpec, DataType
    from mlflow.types import Schema as MlflowSchema

    kinds = {"float": DataType.double, "int": DataType.long, "category": DataType.string}
    cols = [ColSpec(DataType.string, schema.key), ColSpec(DataType.datetime, schema.event_time)]
    cols += [ColSpec(kinds[c.type], c.name, required=c.required) for c in schema.columns]
    target = {"binary": DataType.long, "multiclass": DataType.string, "regression": DataType.double}
    return MlflowSchema([*cols, ColSpec(target[schema.task], schema.target)])


def split_dataset(workspace: Path, schema: Schema, split: str) -> tuple[PandasDataset, dict[str, str]]:
    """The raw ``data/split/<split>.parquet`` as an MLflow dataset, and the tags of its input."""
    from mlflow.data.pandas_dataset import from_pandas

    rel = split_file(split)
    md5 = file_digest(workspace / rel, "md5")
    with warnings.catch_warnings():  # "" and "file" both resolve a local path: same class, one warning
        warnings.filterwarnings("ignore", message=".*can be interpreted in multiple ways")
        dataset = from_pandas(
            pd.read_parquet(workspace / rel),
            source=str(rel),
            name=f"{schema.name}-{split}",
            targets=schema.target,
            digest=md5,
        )
    dataset.schema = dataset_schema(schema)  # fills the cached property: no per-row inference
    tags = {"dvc.path": str(rel), "dvc.md5": md5}
    if (dir_md5 := lock_hashes(workspace, "featurize").get(str(SPLIT_DIR))) is not None:
        tags["dvc.lock.data/split"] = dir_md5
    return dataset, tags


def log_split_datasets(workspace: Path, schema: Schema, splits: tuple[str, ...]) -> None:
    """Log the raw splits as inputs of the active run, each with its context (training, ...)."""
    import mlflow

    for split in splits:
        dataset, tags = split_dataset(workspace, schema, split)
        mlflow.log_input(dataset, context=CONTEXTS[split], tags=tags)


# -- lineage ---------------------------------------------------------------------------------------


def git_commit(project: Path) -> str:
    """``git rev-parse HEAD`` of the project; in an image without git history ``$FLYWHEEL_GIT_COMMIT`` (its
    build argument); else ``"unknown"``."""
    baked = os.environ.get("FLYWHEEL_GIT_COMMIT", "").strip()
    if baked and baked != "unknown" and not (project / ".git").exists():
        return baked
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


def lineage_tags(
    params: Params, settings: Settings, workspace: Path, env: Mapping[str, str]
) -> dict[str, str]:
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
    return {**tags, **model_tags(params.train.model)}


def model_tags(model: str | None) -> dict[str, str]:
    """``flywheel.model``: the network factory with the sha256 of its module's source (none: built-in)."""
    if model is None:
        return {}
    tags = {"flywheel.model": model}
    if (source := module_file(model.partition(":")[0])) is not None:
        tags["flywheel.model.source_sha256"] = file_digest(source, "sha256")
    return tags


# -- the run ---------------------------------------------------------------------------------------


def _run_exists(run_id: str, experiment_id: str) -> bool:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        found = MlflowClient().get_run(run_id)
    except MlflowException:
        return False
    return found.info.experiment_id == experiment_id and found.info.lifecycle_stage == "active"


def open_run(params: Params, settings: Settings, workspace: Path, run_id: str | None) -> ActiveRun:
    """Start the training run, or continue ``run_id`` (a retry after a kill), with lineage tags
    and, when enabled, MLflow's system metrics."""
    import mlflow

    experiment_id = ensure_experiment(settings, params.mlflow.experiment)
    tags = lineage_tags(params, settings, workspace, os.environ)
    system = system_metrics_enabled(params.mlflow, os.environ)
    if system:
        configure_system_metrics(params.mlflow)
    if run_id and _run_exists(run_id, experiment_id):
        return mlflow.start_run(run_id=run_id, tags=tags, log_system_metrics=system)
    if run_id:
        log.warning("MLflow run %s of the checkpoint is gone; continuing in a new run", run_id)
    run_name = f"train-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    return mlflow.start_run(
        experiment_id=experiment_id, run_name=run_name, tags=tags, log_system_metrics=system
    )


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
        **(
            {"train_positive_rate": round(float(data.train_target.float().mean()), 6)}
            if params.schema.task == "binary"
            else {"task": params.schema.task}
        ),
    }


def log_inputs(params: Params, workspace: Path, data: TrainingData) -> None:
    """The run's params (the same values again on a resumed run), its data window and its splits."""
    import mlflow

    mlflow.log_params(run_params(params, data))
    if (workspace / WINDOW).exists():
        mlflow.log_artifact(str(workspace / WINDOW), "lineage")
    log_split_datasets(workspace, params.schema, ("train", "valid"))


# -- epochs ----------------------------------------------------------------------------------------


def log_epoch(stats: EpochStats) -> None:
    """One epoch's losses and ranking metrics at step ``epoch`` of the active run (and in the log)."""
    import mlflow

    values = {
        "train_loss": stats.train_loss,
        "valid_loss": stats.valid_loss,
        "valid_pr_auc": stats.valid_pr_auc,
        "valid_roc_auc": stats.valid_roc_auc,
    }
    if stats.valid_metric is not None:  # another task than binary: its early-stopping metric
        values = {"train_loss": stats.train_loss, "valid_loss": stats.valid_loss}
        mlflow.log_metrics({**values, "valid_metric": stats.valid_metric}, step=stats.epoch)
        log.info(
            "epoch %d: train_loss %.4f valid_loss %.4f valid metric %.4f (%.1fs)",
            stats.epoch,
            stats.train_loss,
            stats.valid_loss,
            stats.valid_metric,
            stats.train_seconds,
        )
        return
    mlflow.log_metrics(values, step=stats.epoch)
    log.info(
        "epoch %d: train_loss %.4f valid_loss %.4f valid_pr_auc %.4f valid_roc_auc %.4f (%.1fs)",
        stats.epoch,
        *values.values(),
        stats.train_seconds,
    )


def log_missing_epochs(run_id: str, history: Iterable[EpochStats]) -> None:
    """Log the restored epochs the run lacks (a kill between a checkpoint and its logging)."""
    from mlflow import MlflowClient

    logged = {m.step for m in MlflowClient().get_metric_history(run_id, "valid_pr_auc")}
    for stats in history:
        if stats.epoch not in logged:
            log_epoch(stats)


def log_resumed(run_id: str, epoch: int, history: Iterable[EpochStats]) -> None:
    """Mark the run as resumed after ``epoch`` and log the restored epochs it lacks."""
    import mlflow

    mlflow.set_tag("flywheel.resumed_from_epoch", str(epoch))
    log_missing_epochs(run_id, history)


# -- the model -------------------------------------------------------------------------------------


def model_signature(schema: Schema) -> ModelSignature:
    """The pyfunc signature: raw feature columns in, ``probability``/``label`` out.

    Each input has the exact type of its schema column, so MLflow enforces it a column at a time (an
    ``Any`` column is checked one value at a time, most of a large ``predict``): ``float`` is
    ``double`` (NaN is a missing value; integers of up to 32 bits are widened), ``category`` is
    ``string``, a required ``int`` is ``long``. An optional ``int`` column stays ``Any``: no MLflow type
    takes both its forms, int64 when every value is there and float64 with NaN (or nullable ``Int64``)
    when one is missing; the preprocessor coerces it. Optional schema columns are optional inputs.
    """
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, TensorSpec
    from mlflow.types.schema import Schema as MlflowSchema

    inputs: list[ColSpec | TensorSpec] = [
        ColSpec(input_type(c), c.name, required=c.required) for c in schema.columns
    ]
    outputs: list[ColSpec | TensorSpec] = [ColSpec("double", "probability"), ColSpec("long", "label")]
    if schema.task == "regression":
        outputs = [ColSpec("double", "prediction")]
    elif schema.task == "multiclass":
        outputs = [ColSpec("string", "label"), ColSpec("double", "probability")]
        outputs += [ColSpec("double", f"proba_{c}") for c in schema.classes or ()]
    return ModelSignature(inputs=MlflowSchema(inputs), outputs=MlflowSchema(outputs))


def input_type(column: Column) -> DataType | AnyType:
    """The MLflow type of a schema column as a model input (see :func:`model_signature`)."""
    from mlflow.types.schema import AnyType, DataType

    if column.type == "int" and not column.required:
        return AnyType()  # type: ignore[no-untyped-call]
    return {"float": DataType.double, "int": DataType.long, "category": DataType.string}[column.type]


def input_example(workspace: Path, schema: Schema, rows: int = 5) -> pd.DataFrame:
    """The first raw train rows, feature columns only, in JSON-friendly dtypes that match the signature:
    float64 for ``float`` and optional ``int`` columns, int64 for required ``int`` columns."""
    raw = pd.read_parquet(workspace / split_file("train"), columns=list(schema.feature_names)).head(rows)
    numeric = {
        c.name: pd.to_numeric(raw[c.name]).astype("int64" if c.type == "int" and c.required else "float64")
        for c in schema.numeric
    }
    return raw.assign(**numeric).astype({c.name: object for c in schema.categorical})


def pip_requirements() -> list[str]:
    """Exact versions of what the pyfunc imports when it is loaded."""
    import cloudpickle
    import mlflow
    import numpy as np
    import pyarrow
    import torch

    return [
        f"mlflow=={mlflow.__version__}",
        f"torch=={torch.__version__.split('+')[0]}",
        f"numpy=={np.__version__}",
        f"pandas=={pd.__version__}",
        f"pyarrow=={pyarrow.__version__}",
        f"cloudpickle=={cloudpickle.__version__}",
    ]


def log_pyfunc(
    artifacts: dict[str, str], schema: Schema, example: pd.DataFrame, model: str | None = None
) -> ModelInfo:
    """Log the pyfunc model (raw rows in) with its artifacts, signature and pinned requirements.

    The model ships this package's folder as its code path, and with ``train.model`` the factory's
    module (:func:`factory_code`), so the pyfunc rebuilds the network wherever it is loaded.
    """
    import mlflow

    from pipelines.train.model import FlywheelPyfunc

    with factory_code(model) as extra:
        info: ModelInfo = mlflow.pyfunc.log_model(
            name="model",
            python_model=FlywheelPyfunc(),
            artifacts=artifacts,
            signature=model_signature(schema),
            input_example=example,
            pip_requirements=pip_requirements(),
            # the whole package, importable as ``pipelines`` where the model is loaded (the pickle names it)
            code_paths=[str(Path(__file__).resolve().parents[1]), *extra],
        )
    return info


@contextmanager
def factory_code(model: str | None) -> Iterator[list[str]]:
    """The code paths that make ``train.model``'s module importable by its dotted name where the
    model is loaded: its file with the ``__init__.py`` of each parent package, in a temporary folder.

    Nothing for the built-in network or a factory inside ``pipelines`` (shipped already).
    """
    module = model.partition(":")[0] if model else None
    source = module_file(module) if module else None
    if module is None or source is None or module.split(".")[0] == "pipelines":
        yield []
        return
    parts = module.split(".")
    is_package = source.name == "__init__.py"
    root = source.parents[len(parts) if is_package else len(parts) - 1]
    with tempfile.TemporaryDirectory(prefix="flywheel-model-code-") as tmp:
        for depth in range(1, len(parts)):  # the parent packages' __init__.py, where they have one
            init = root.joinpath(*parts[:depth], "__init__.py")
            if init.exists():
                _copy(init, Path(tmp) / init.relative_to(root))
        _copy(source, Path(tmp) / source.relative_to(root))
        yield [str(Path(tmp) / (parts[0] if len(parts) > 1 or is_package else source.name))]


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


# -- the outcome -----------------------------------------------------------------------------------


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


def log_outcome(metrics: dict[str, float], history: list[EpochStats], model_id: str) -> None:
    """The run's summary metrics (linked to the logged model) and its learning curve."""
    import mlflow

    mlflow.log_metrics(metrics, model_id=model_id)
    mlflow.log_figure(learning_curve(history), "plots/learning_curve.png")
