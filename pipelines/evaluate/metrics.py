"""The one implementation of the classification metrics: ranking, threshold, calibration, curves.

Pure functions of numpy arrays (labels 0/1, probabilities) returning numbers or JSON-able point lists;
training (validation scores), evaluation (the test report), the promotion gate and the drift check
all score with these.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

MAX_POINTS = 200
RANKING_METRICS = ("roc_auc", "pr_auc")


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
    return {
        "roc_auc": metric("roc_auc", y, proba),
        "pr_auc": metric("pr_auc", y, proba),
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


def metric(name: str, y: np.ndarray, proba: np.ndarray) -> float:
    """One ranking metric (``roc_auc`` or ``pr_auc``); NaN when the labels cannot judge it."""
    if name not in RANKING_METRICS:
        raise ValueError(f"metric {name!r}: expected one of {RANKING_METRICS}")
    if name == "roc_auc":
        return float(roc_auc_score(y, proba)) if _two_classes(y) else float("nan")
    return float(average_precision_score(y, proba)) if y.sum() else float("nan")


def resampled_metric(name: str, y: np.ndarray, proba: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """:func:`metric` of many resamples at once, one per row of ``counts`` (how often each row is drawn).

    Row ``r`` equals ``metric(name, np.repeat(y, counts[r]), np.repeat(proba, counts[r]))``, ties
    included (half a pair for ROC-AUC, one threshold per distinct score for PR-AUC); NaN where a
    resample cannot judge the metric. A bootstrap of a few hundred rounds costs one sort, not a few
    hundred calls.
    """
    if name not in RANKING_METRICS:
        raise ValueError(f"metric {name!r}: expected one of {RANKING_METRICS}")
    counts = np.atleast_2d(np.asarray(counts, dtype="float64"))
    order = np.argsort(proba if name == "roc_auc" else -np.asarray(proba), kind="stable")
    scores, positive = np.asarray(proba)[order], np.asarray(y)[order].astype(bool)
    starts = np.flatnonzero(np.r_[True, scores[1:] != scores[:-1]])  # one group per distinct score
    weights = counts[:, order]
    pos = np.add.reduceat(np.where(positive, weights, 0.0), starts, axis=1)
    neg = np.add.reduceat(np.where(positive, 0.0, weights), starts, axis=1)
    total_pos, total_neg = pos.sum(axis=1), neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        if name == "roc_auc":  # pairs ranked right, ties counting half (ascending order)
            below = np.cumsum(neg, axis=1) - neg
            value = (pos * (below + 0.5 * neg)).sum(axis=1) / (total_pos * total_neg)
            return np.where((total_pos > 0) & (total_neg > 0), value, np.nan)
        tp, fp = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)  # descending order: average precision
        precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
        value = (pos * precision).sum(axis=1) / total_pos
        return np.where(total_pos > 0, value, np.nan)


def ranking_metrics(y: np.ndarray, proba: np.ndarray) -> tuple[float, float]:
    """``(pr_auc, roc_auc)``; NaN when the labels hold a single class."""
    if not _two_classes(y):
        return float("nan"), float("nan")
    return metric("pr_auc", y, proba), metric("roc_auc", y, proba)


def best_f1_threshold(y: np.ndarray, proba: np.ndarray) -> tuple[float, float]:
    """The probability threshold maximizing F1, and that F1 (0.5 and 0 without positives)."""
    if y.sum() == 0:
        return 0.5, 0.0
    precision, recall, thresholds = precision_recall_curve(y, proba)
    f1 = np.divide(
        2 * precision * recall, precision + recall, out=np.zeros_like(precision), where=precision + recall > 0
    )
    best = int(np.argmax(f1[:-1]))
    return float(thresholds[best]), float(f1[best])
