"""Evaluate: score the trained model on the held-out test features.

The metrics are :mod:`pipelines.evaluate.metrics`; :func:`run` scores ``data/features/test.parquet``
with ``models/model/``, writes ``metrics/evaluate.json`` and the DVC plots, and
logs the ``test_*`` metrics and figures onto the MLflow run that trained the model.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipelines.common.errors import FlywheelError
from pipelines.common.io import write_json
from pipelines.evaluate.metrics import (
    Evaluation,
    calibration_table,
    classification_metrics,
    confusion_rows,
    multiclass_metrics,
    pr_points,
    regression_metrics,
    residual_points,
    roc_points,
)
from pipelines.evaluate.plots import figures
from pipelines.train import Predictor
from pipelines.workspace.paths import EVALUATE_METRICS, MODEL_DIR, PLOTS_DIR, features_file, split_file

if TYPE_CHECKING:
    from pipelines.common.config import Params, Schema
    from pipelines.common.settings import Settings

log = logging.getLogger(__name__)


class EvaluateError(FlywheelError):
    """The model or the test features are missing or unusable."""


MAX_CONFUSION_ROWS = 20_000  # DVC's confusion template counts rows; an even sample keeps the file small


def evaluate_scores(y: np.ndarray, proba: np.ndarray, threshold: float, bins: int) -> Evaluation:
    """Everything evaluate reports, from labels and probabilities."""
    y = y.astype(np.int64)
    label = (proba >= threshold).astype(np.int64)
    rows: np.ndarray | list[int] = (
        np.linspace(0, len(y) - 1, min(len(y), MAX_CONFUSION_ROWS)).astype(np.int64) if len(y) else []
    )
    confusion = [{"actual": int(y[i]), "predicted": int(label[i])} for i in rows]
    return Evaluation(
        classification_metrics(y, proba, threshold, bins),
        roc_points(y, proba),
        pr_points(y, proba),
        calibration_table(y, proba, bins),
        confusion,
    )


def evaluate_task(y: np.ndarray, scores: np.ndarray, task: str, classes: tuple[str, ...]) -> Evaluation:
    """Everything evaluate reports of a multiclass model (class codes, ``[n, k]`` probabilities) or a
    regression model (targets, predictions)."""
    if task == "regression":
        return Evaluation(regression_metrics(y, scores), [], [], [], [], residual_points(y, scores), task)
    y = y.astype(np.int64)
    rows = np.linspace(0, len(y) - 1, min(len(y), MAX_CONFUSION_ROWS)).astype(np.int64)
    predicted = scores.argmax(axis=1) if len(scores) else np.empty(0, dtype=np.int64)
    confusion = confusion_rows(y[rows], predicted[rows], classes)
    return Evaluation(multiclass_metrics(y, scores, classes), [], [], [], confusion, [], task, classes)


# -- the stage ---------------------------------------------------------------------------------


def score_test_features(workspace: Path) -> tuple[Predictor, np.ndarray, np.ndarray]:
    """Load ``models/model/`` and score ``data/features/test.parquet``: ``(predictor, y, proba)``."""
    model_dir, test_path = workspace / MODEL_DIR, workspace / features_file("test")
    for path in (model_dir, test_path):
        if not path.exists():
            raise EvaluateError(f"{path} not found; expected featurize and train to have run in {workspace}")
    predictor = Predictor.load(model_dir)
    numeric, categorical, y = predictor.preprocessor.split_features(pd.read_parquet(test_path))
    return predictor, y, predictor.score(numeric, categorical)


def write_reports(workspace: Path, result: Evaluation) -> None:
    """``metrics/evaluate.json`` and the DVC plots: ``plots/{roc,pr,calibration,confusion}.json`` and
    regression's ``plots/{residuals,predicted_actual}.json``."""
    write_json(workspace / EVALUATE_METRICS, result.metrics)
    for name in ("roc", "pr", "calibration", "confusion"):
        write_json(workspace / PLOTS_DIR / f"{name}.json", getattr(result, name))
    for name in ("residuals", "predicted_actual"):  # regression's plots; empty for the other tasks
        write_json(workspace / PLOTS_DIR / f"{name}.json", result.residuals)


def log_to_training_run(
    settings: Settings,
    meta: dict[str, Any],
    result: Evaluation,
    workspace: Path | None = None,
    schema: Schema | None = None,
) -> None:
    """Log ``test_*`` metrics and the figures onto the MLflow run that trained the model, and the
    raw test split (``data/split/test.parquet`` of ``workspace``) as its ``test`` dataset."""
    import mlflow

    from pipelines.common import tracking
    from pipelines.train import log_split_datasets

    tracking.client(settings)
    with mlflow.start_run(run_id=meta["mlflow_run_id"]):
        if workspace is not None and schema is not None and (workspace / split_file("test")).exists():
            log_split_datasets(workspace, schema, ("test",))
        mlflow.log_metrics(
            {f"test_{k}": float(v) for k, v in result.metrics.items()}, model_id=meta.get("model_id")
        )
        for name, fig in figures(result).items():
            mlflow.log_figure(fig, f"evaluate/{name}")


def run(params: Params, settings: Settings, workspace: Path) -> dict[str, Any]:
    """Evaluate the workspace's model on its test features; report to files and MLflow."""
    predictor, y, proba = score_test_features(workspace)
    task = predictor.preprocessor.task
    result = (
        evaluate_scores(y, proba, predictor.threshold, params.evaluate.calibration_bins)
        if task == "binary"
        else evaluate_task(y, proba, task, predictor.preprocessor.classes)
    )
    write_reports(workspace, result)
    run_id = predictor.meta.get("mlflow_run_id")
    if run_id:
        log_to_training_run(settings, predictor.meta, result, workspace, params.schema)
    else:
        log.warning("models/model/model.json has no mlflow_run_id; test metrics not logged to MLflow")
    log.info("test metrics: %s", result.metrics)
    return {"metrics": result.metrics, "mlflow_run_id": run_id}
