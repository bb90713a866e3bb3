"""Figures of an evaluation for MLflow: ROC, PR, calibration and the confusion matrix (binary); the
confusion matrix of the classes (multiclass); residuals and predicted vs actual (regression)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from pipelines.evaluate.metrics import Evaluation


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


def class_confusion_figure(rows: list[dict[str, Any]], classes: tuple[str, ...]) -> Figure:
    """The k×k confusion matrix of class names with counts (actual rows, predicted columns)."""
    index = {c: i for i, c in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for row in rows:
        matrix[index[row["actual"]], index[row["predicted"]]] += 1
    fig, ax = _figure("confusion matrix", "predicted", "actual")
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(int(count)), ha="center", va="center", color="black")
    ticks = list(range(len(classes)))
    ax.set(xticks=ticks, yticks=ticks, xticklabels=list(classes), yticklabels=list(classes))
    return fig


def scatter_figure(points: list[dict[str, float]], x: str, y: str, title: str, diagonal: bool) -> Figure:
    """A scatter of ``points[x]`` against ``points[y]``, with the line y = x or y = 0."""
    fig, ax = _figure(title, x, y)
    xs, ys = [p[x] for p in points], [p[y] for p in points]
    ax.scatter(xs, ys, s=6, alpha=0.6)
    if xs:
        low, high = min(xs), max(xs)
        ax.plot([low, high], [low, high] if diagonal else [0, 0], linestyle="--", color="grey")
    return fig


def figures(result: Evaluation) -> dict[str, Figure]:
    """ROC, PR, calibration and confusion-matrix figures by artifact file name (per task)."""
    if result.task == "regression":
        m = result.metrics
        return {
            "residuals.png": scatter_figure(
                result.residuals, "predicted", "residual", f"residuals (RMSE {m['rmse']:.3f})", False
            ),
            "predicted_actual.png": scatter_figure(
                result.residuals, "actual", "predicted", f"predicted vs actual (R² {m['r2']:.3f})", True
            ),
        }
    if result.task == "multiclass":
        return {"confusion.png": class_confusion_figure(result.confusion, result.classes)}
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
