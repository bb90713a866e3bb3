"""The one implementation of the metrics of every task: ranking, threshold, calibration, curves for
binary classification; macro-F1, log-loss, accuracy and per-class precision/recall for multiclass;
RMSE, MAE and R² with residuals for regression.

Pure functions of numpy arrays (labels 0/1 and probabilities; class codes and ``[n, k]`` probabilities;
numbers and predictions) returning numbers or JSON-able point lists; training (validation scores),
evaluation (the test report), the promotion gate and the drift check all score with these.
:func:`metric` and :func:`resampled_metric` take any metric of ``TASK_METRICS``; :func:`orient` turns a
value into "higher is better" (the gate and early stopping compare oriented values).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipelines.common.config import LOWER_IS_BETTER, TASK_METRICS

MAX_POINTS = 200
RANKING_METRICS = ("roc_auc", "pr_auc")
ALL_METRICS = tuple(m for names in TASK_METRICS.values() for m in names)
EPS = 1e-15


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
    from sklearn.metrics import roc_curve  # curves only: scoring and the gate never import scikit-learn

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
    from sklearn.metrics import precision_recall_curve

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
    """One metric of any task; NaN when the labels cannot judge it.

    Binary (``roc_auc``, ``pr_auc``): labels 0/1 and probabilities. Multiclass (``macro_f1``,
    ``log_loss``, ``accuracy``): class codes and ``[n, k]`` probabilities. Regression (``rmse``,
    ``mae``, ``r2``): targets and predictions. Every metric is :func:`resampled_metric` of the rows
    drawn once each, so a score and its bootstrap never disagree; ROC-AUC and PR-AUC equal
    scikit-learn's ``roc_auc_score`` and ``average_precision_score``, ties included. Only the curves
    import scikit-learn: importing it costs a process about a second, the promotion gate's included.
    """
    if name not in ALL_METRICS:
        raise ValueError(f"metric {name!r}: expected one of {ALL_METRICS}")
    return float(resampled_metric(name, y, proba, np.ones((1, len(y))))[0])


def resampled_metric(name: str, y: np.ndarray, proba: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """:func:`metric` of many resamples at once, one per row of ``counts`` (how often each row is drawn).

    Row ``r`` equals ``metric(name, np.repeat(y, counts[r]), np.repeat(proba, counts[r]))``, ties
    included (half a pair for ROC-AUC, one threshold per distinct score for PR-AUC); NaN where a
    resample cannot judge the metric. A bootstrap of a few hundred rounds costs one sort, not a few
    hundred calls.
    """
    if name not in ALL_METRICS:
        raise ValueError(f"metric {name!r}: expected one of {ALL_METRICS}")
    counts = np.atleast_2d(np.asarray(counts, dtype="float64"))
    if name in TASK_METRICS["regression"]:
        return _resampled_regression(name, np.asarray(y, dtype="float64"), np.asarray(proba), counts)
    if name in TASK_METRICS["multiclass"]:
        return _resampled_multiclass(name, np.asarray(y, dtype="int64"), np.asarray(proba), counts)
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


def _resampled_regression(name: str, y: np.ndarray, pred: np.ndarray, w: np.ndarray) -> np.ndarray:
    """RMSE, MAE or R² with each row weighted by how often a resample drew it (NaN for no rows)."""
    err = np.asarray(pred, dtype="float64") - y
    total = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        if name == "rmse":
            return np.asarray(np.sqrt((w * err**2).sum(axis=1) / total))
        if name == "mae":
            return np.asarray((w * np.abs(err)).sum(axis=1) / total)
        mean = (w * y).sum(axis=1) / total
        spread = (w * (y[None, :] - mean[:, None]) ** 2).sum(axis=1)
        return np.where(spread > 0, 1 - (w * err**2).sum(axis=1) / spread, np.nan)


def _resampled_multiclass(name: str, y: np.ndarray, proba: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Macro-F1, log-loss or accuracy of ``[n, k]`` probabilities, rows weighted by resample counts."""
    proba = np.atleast_2d(np.asarray(proba, dtype="float64"))
    total = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        if name == "log_loss":
            true = np.clip(proba[np.arange(len(y)), y], EPS, 1.0)
            return np.asarray((w * -np.log(true)).sum(axis=1) / total)
        predicted = proba.argmax(axis=1)
        if name == "accuracy":
            return np.asarray((w * (predicted == y)).sum(axis=1) / total)
        f1s, present = [], []
        for c in range(proba.shape[1]):  # classes seen in the labels or the predictions count
            tp = (w * ((predicted == c) & (y == c))).sum(axis=1)
            fp = (w * ((predicted == c) & (y != c))).sum(axis=1)
            fn = (w * ((predicted != c) & (y == c))).sum(axis=1)
            den = 2 * tp + fp + fn
            f1s.append(np.where(den > 0, 2 * tp / np.where(den > 0, den, 1), 0.0))
            present.append(den > 0)
        seen = np.sum(present, axis=0)
        return np.where(seen > 0, np.sum(f1s, axis=0) / np.where(seen > 0, seen, 1), np.nan)


def orient(name: str, value: float) -> float:
    """``value`` so that higher is better: minus the value of a lower-is-better metric (RMSE, log-loss)."""
    return -value if name in LOWER_IS_BETTER else value


def direction(name: str) -> str:
    """``"lower"`` or ``"higher"``: which way ``name`` is better."""
    return "lower" if name in LOWER_IS_BETTER else "higher"


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """RMSE, MAE, R², the mean residual (bias) and the row count of predictions ``pred`` for targets ``y``."""
    y, pred = np.asarray(y, dtype="float64"), np.asarray(pred, dtype="float64")
    return {
        **{m: metric(m, y, pred) for m in TASK_METRICS["regression"]},
        "bias": float(np.mean(pred - y)) if len(y) else float("nan"),
        "n": int(len(y)),
        "target_mean": float(y.mean()) if len(y) else float("nan"),
    }


def multiclass_metrics(y: np.ndarray, proba: np.ndarray, classes: tuple[str, ...]) -> dict[str, float]:
    """Macro-F1, log-loss, accuracy, and per class precision and recall (``precision_<class>``)."""
    y = np.asarray(y, dtype="int64")
    proba = np.atleast_2d(np.asarray(proba, dtype="float64"))
    predicted = proba.argmax(axis=1)
    out: dict[str, float] = {m: metric(m, y, proba) for m in TASK_METRICS["multiclass"]}
    for c, name in enumerate(classes):
        tp = int(((predicted == c) & (y == c)).sum())
        out[f"precision_{name}"] = _ratio(tp, int((predicted == c).sum()))
        out[f"recall_{name}"] = _ratio(tp, int((y == c).sum()))
    return {**out, "n": int(len(y))}


def class_codes(values: np.ndarray, classes: tuple[str, ...]) -> np.ndarray:
    """Class labels (text or whole numbers) as codes into ``classes``; -1 for a label not among them."""
    lookup = {c: i for i, c in enumerate(classes)}
    return np.array([lookup.get(_label_text(v), -1) for v in values], dtype="int64")


def _label_text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def confusion_rows(y: np.ndarray, predicted: np.ndarray, names: tuple[str, ...]) -> list[dict[str, str]]:
    """``{actual, predicted}`` per row, by class name (DVC's confusion template counts them)."""
    return [{"actual": names[a], "predicted": names[p]} for a, p in zip(y, predicted, strict=True)]


def residual_points(
    y: np.ndarray, pred: np.ndarray, max_points: int = MAX_POINTS * 5
) -> list[dict[str, float]]:
    """``{predicted, actual, residual}`` points (an even sample of rows by prediction), for the
    residual plot and the predicted-vs-actual plot."""
    order = np.argsort(np.asarray(pred), kind="stable")
    points = [
        {"predicted": float(pred[i]), "actual": float(y[i]), "residual": float(y[i] - pred[i])} for i in order
    ]
    return thin(points, max_points)


def ranking_metrics(y: np.ndarray, proba: np.ndarray) -> tuple[float, float]:
    """``(pr_auc, roc_auc)``; NaN when the labels hold a single class."""
    if not _two_classes(y):
        return float("nan"), float("nan")
    return metric("pr_auc", y, proba), metric("roc_auc", y, proba)


def best_f1_threshold(y: np.ndarray, proba: np.ndarray) -> tuple[float, float]:
    """The probability threshold maximizing F1, and that F1 (0.5 and 0 without positives)."""
    if y.sum() == 0:
        return 0.5, 0.0
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(y, proba)
    f1 = np.divide(
        2 * precision * recall, precision + recall, out=np.zeros_like(precision), where=precision + recall > 0
    )
    best = int(np.argmax(f1[:-1]))
    return float(thresholds[best]), float(f1[best])


@dataclass(frozen=True)
class Evaluation:
    """Metrics and plot data of one model on one labelled set."""

    metrics: dict[str, float]
    roc: list[dict[str, float]]
    pr: list[dict[str, float]]
    calibration: list[dict[str, float]]
    confusion: list[dict[str, Any]]
    residuals: list[dict[str, float]] = field(default_factory=list)
    task: str = "binary"
    classes: tuple[str, ...] = ()
