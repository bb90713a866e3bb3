"""MLflow tracking shared by train and evaluate: system metrics and the data splits as datasets.

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

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from pipelines.common.io import file_digest
from pipelines.workspace.lock import lock_hashes
from pipelines.workspace.paths import SPLIT_DIR, split_file

if TYPE_CHECKING:
    from mlflow.data.pandas_dataset import PandasDataset
    from mlflow.types import Schema as MlflowSchema

    from pipelines.common.config import MlflowConfig, Schema

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

    mlflow.set_system_metrics_sampling_interval(cfg.system_metrics_interval_s)
    mlflow.set_system_metrics_samples_before_logging(1)


def dataset_schema(schema: Schema) -> MlflowSchema:
    """The MLflow column schema of a raw split: key, event time, features, target."""
    from mlflow.types import ColSpec, DataType
    from mlflow.types import Schema as MlflowSchema

    kinds = {"float": DataType.double, "int": DataType.long, "category": DataType.string}
    cols = [ColSpec(DataType.string, schema.key), ColSpec(DataType.datetime, schema.event_time)]
    cols += [ColSpec(kinds[c.type], c.name, required=c.required) for c in schema.columns]
    return MlflowSchema([*cols, ColSpec(DataType.long, schema.target)])


def split_dataset(workspace: Path, schema: Schema, split: str) -> tuple[PandasDataset, dict[str, str]]:
    """The raw ``data/split/<split>.parquet`` as an MLflow dataset, and the tags of its input."""
    import mlflow.data

    rel = split_file(split)
    md5 = file_digest(workspace / rel, "md5")
    with warnings.catch_warnings():  # "" and "file" both resolve a local path: same class, one warning
        warnings.filterwarnings("ignore", message=".*can be interpreted in multiple ways")
        dataset = mlflow.data.from_pandas(
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
