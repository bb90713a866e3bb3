"""Figures of an evaluation for MLflow: ROC, PR, calibration and the confusion matrix."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from pipelines.evaluate.stage import Evaluation


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
