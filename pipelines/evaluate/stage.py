"""Evaluate: score the trained model on the held-out test features.

Pure metric functions take numpy arrays (labels 0/1, probabilities) and return
numbers or JSON-able point lists; :func:`run` scores ``data/features/test.parquet``
with ``models/model/``, writes ``metrics/evaluate.json`` and the DVC plots, and
logs the ``test_*`` metrics and figures onto the MLflow run that trained the model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from pipelines.common.io import write_json
from pipelines.train.network import Predictor
from pipelines.workspace.paths import EVALUATE_METRICS, MODEL_DIR, PLOTS_DIR, features_file, split_file

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from pipelines.common.config import Params, Schema
    from pipelines.common.settings import Settings

log = logging.getLogger(__name__)

MAX_POINTS = 200


class EvaluateError(RuntimeError):
    """The model or the test features are missing or unusable."""


# -- pure metrics ------------------------------------------------------------------------------


def _two_classes(y: np.ndarray) -> bool:
    return len(np.unique(y)) == 2


def thin(points: list[dict[str, float]], max_points: int = MAX_POINTS) -> list[dict[str, float]]:
    """At most ``max_points`` evenly spaced points, the first and last kept."""
    if len(points) <= max_points:
        return points
    keep = np.unique(np.linspace(0, len(points) - 1, max_points).round().astype(int))
    return [points[i] for i in keep]


def roc_points(y: np.ndarray, proba: np.ndarray, max_points: int = MAX_POINTS) -> list[dict[str, float]]:
    """ROC curve as ``{fpr, tpr, threshold}`` points (empty for a single class)."""
    if not _two_classes(y):
        return []
    fpr, tpr, thresholds = roc_curve(y, proba)
    points = [
        {"fpr": float(f), "tpr": float(t), "threshold": float(min(th, 1.0))}
        for f, t, th in zip(fpr, tpr, thresholds, strict=True)
    ]
    return thin(points, max_points)


def pr_points(y: np.ndarray, proba: np.ndarray, max_points: int = MAX_POINTS) -> list[dict[str, float]]:
    """Precision-recall curve as ``{recall, precision, threshold}`` points (empty without positives)."""
    if y.sum() == 0:
        return []
    precision, recall, thresholds = precision_recall_curve(y, proba)
    thresholds = np.append(thresholds, 1.0)
    points = [
        {"recall": float(r), "precision": float(p), "threshold": float(t)}
        for r, p, t in zip(recall, precision, thresholds, strict=True)
    ]
    return thin(points[::-1], max_points)


def calibration_table(y: np.ndarray, proba: np.ndarray, bins: int) -> list[dict[str, float]]:
    """Per non-empty equal-width bin: mean predicted probability vs observed positive rate."""
    index = np.minimum((proba * bins).astype(int), bins - 1)
    rows = []
    for b in range(bins):
        mask = index == b
        if mask.any():
            rows.append(
                {
                    "bin": b,
                    "mean_predicted": float(proba[mask].mean()),
                    "observed_rate": float(y[mask].mean()),
                    "count": int(mask.sum()),
                }
            )
    return rows


def expected_calibration_error(y: np.ndarray, proba: np.ndarray, bins: int) -> float:
    """Count-weighted mean gap between predicted and observed rate over equal-width bins."""
    table = calibration_table(y, proba, bins)
    n = sum(row["count"] for row in table)
    return (
        float(sum(row["count"] * abs(row["mean_predicted"] - row["observed_rate"]) for row in table) / n)
        if n
        else float("nan")
    )


def confusion_counts(y: np.ndarray, label: np.ndarray) -> dict[str, int]:
    """True/false positives and negatives."""
    y, label = y.astype(bool), label.astype(bool)
    return {
        "tn": int((~y & ~label).sum()),
        "fp": int((~y & label).sum()),
        "fn": int((y & ~label).sum()),
        "tp": int((y & label).sum()),
    }


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


def classification_metrics(y: np.ndarray, proba: np.ndarray, threshold: float, bins: int) -> dict[str, float]:
    """Ranking, threshold, calibration and count metrics of probabilities ``proba`` for labels ``y``."""
    counts = confusion_counts(y, proba >= threshold)
    precision = _ratio(counts["tp"], counts["tp"] + counts["fp"])
    recall = _ratio(counts["tp"], counts["tp"] + counts["fn"])
    two = _two_classes(y)
    return {
        "roc_auc": float(roc_auc_score(y, proba)) if two else float("nan"),
        "pr_auc": float(average_precision_score(y, proba)) if y.sum() else float("nan"),
        "f1": _ratio(2 * counts["tp"], 2 * counts["tp"] + counts["fp"] + counts["fn"]),
        "precision": precision,
        "recall": recall,
        "brier": float(np.mean((proba - y) ** 2)) if len(y) else float("nan"),
        "ece": expected_calibration_error(y, proba, bins),
        "threshold": float(threshold),
        "n": int(len(y)),
        "positive_rate": float(y.mean()) if len(y) else float("nan"),
        **counts,
    }


@dataclass(frozen=True)
class Evaluation:
    """Metrics and plot data of one model on one labelled set."""

    metrics: dict[str, float]
    roc: list[dict[str, float]]
    pr: list[dict[str, float]]
    calibration: list[dict[str, float]]
    confusion: list[dict[str, int]]


MAX_CONFUSION_ROWS = 20_000  # DVC's confusion template counts rows; an even sample keeps the file small


def evaluate_scores(y: np.ndarray, proba: np.ndarray, threshold: float, bins: int) -> Evaluation:
    """Everything evaluate reports, from labels and probabilities."""
    y = y.astype(np.int64)
    label = (proba >= threshold).astype(np.int64)
    rows = np.linspace(0, len(y) - 1, min(len(y), MAX_CONFUSION_ROWS)).astype(np.int64) if len(y) else []
    confusion = [{"actual": int(y[i]), "predicted": int(label[i])} for i in rows]
    return Evaluation(
        classification_metrics(y, proba, threshold, bins),
        roc_points(y, proba),
        pr_points(y, proba),
        calibration_table(y, proba, bins),
        confusion,
    )


# -- figures -----------------------------------------------------------------------------------


def _figure(title: str, xlabel: str, ylabel: str) -> tuple[Figure, Any]:
    from matplotlib.figure import Figure  # no pyplot: rendered by Agg, no global figure state

    fig = Figure(figsize=(5, 4.5))
    ax = fig.subplots()
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return fig, ax


def curve_figure(
    points: list[dict[str, float]], x: str, y: str, title: str, diagonal: bool = False
) -> Figure:
    """A line plot of ``points[x]`` against ``points[y]``."""
    fig, ax = _figure(title, x, y)
    ax.plot([p[x] for p in points], [p[y] for p in points], marker="." if len(points) < 30 else None)
    if diagonal:
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.set(xlim=(0, 1), ylim=(0, 1.02))
    return fig


def confusion_figure(metrics: dict[str, float]) -> Figure:
    """The 2×2 confusion matrix with counts."""
    fig, ax = _figure(f"confusion at threshold {metrics['threshold']:.3f}", "predicted", "actual")
    matrix = np.array([[metrics["tn"], metrics["fp"]], [metrics["fn"], metrics["tp"]]])
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(int(count)), ha="center", va="center", color="black")
    ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["0", "1"], yticklabels=["0", "1"])
    return fig


def figures(result: Evaluation) -> dict[str, Figure]:
    """ROC, PR, calibration and confusion-matrix figures by artifact file name."""
    return {
        "roc.png": curve_figure(
            result.roc, "fpr", "tpr", f"ROC (AUC {result.metrics['roc_auc']:.3f})", diagonal=True
        ),
        "pr.png": curve_figure(result.pr, "recall", "precision", f"PR (AP {result.metrics['pr_auc']:.3f})"),
        "calibration.png": curve_figure(
            result.calibration,
            "mean_predicted",
            "observed_rate",
            f"calibration (ECE {result.metrics['ece']:.3f})",
            diagonal=True,
        ),
        "confusion.png": confusion_figure(result.metrics),
    }


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
    """``metrics/evaluate.json`` and ``plots/{roc,pr,calibration,confusion}.json``."""
    write_json(workspace / EVALUATE_METRICS, result.metrics)
    for name in ("roc", "pr", "calibration", "confusion"):
        write_json(workspace / PLOTS_DIR / f"{name}.json", getattr(result, name))


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

    from pipelines.train import tracking

    mlflow.set_tracking_uri(settings.tracking_uri)
    with mlflow.start_run(run_id=meta["mlflow_run_id"]):
        if workspace is not None and schema is not None and (workspace / split_file("test")).exists():
            tracking.log_split_datasets(workspace, schema, ("test",))
        mlflow.log_metrics(
            {f"test_{k}": float(v) for k, v in result.metrics.items()}, model_id=meta.get("model_id")
        )
        for name, fig in figures(result).items():
            mlflow.log_figure(fig, f"evaluate/{name}")


def run(params: Params, settings: Settings, workspace: Path) -> dict[str, Any]:
    """Evaluate the workspace's model on its test features; report to files and MLflow."""
    predictor, y, proba = score_test_features(workspace)
    result = evaluate_scores(y, proba, predictor.threshold, params.evaluate.calibration_bins)
    write_reports(workspace, result)
    run_id = predictor.meta.get("mlflow_run_id")
    if run_id:
        log_to_training_run(settings, predictor.meta, result, workspace, params.schema)
    else:
        log.warning("models/model/model.json has no mlflow_run_id; test metrics not logged to MLflow")
    log.info("test metrics: %s", result.metrics)
    return {"metrics": result.metrics, "mlflow_run_id": run_id}
