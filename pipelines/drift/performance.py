"""The performance trigger: the champion on the labelled window against what it was evaluated at.

When the current window carries labels, the most direct sign that the champion needs
replacing is that it does worse than it did on its test rows. The gap is judged with an
interval, not a point: the window's metric is block-bootstrapped over blocks of event
time (``promote.block``, :func:`pipelines.promote.bootstrap_metric`), and the evaluated
metric's own uncertainty (its block-bootstrap standard error, recorded by the gate) is
added in quadrature. The trigger fires when the whole interval of
``window − evaluated`` lies below ``-drift.max_performance_drop``. Too few blocks, one
class or no evaluated metric: not judged, and ``note`` says why. Pure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from pipelines.common.config import LOWER_IS_BETTER, TASK_METRICS, DriftConfig, PromoteConfig
from pipelines.evaluate.metrics import class_codes
from pipelines.evaluate.metrics import metric as metric_value
from pipelines.promote import Interval, block_ids, bootstrap_metric


@dataclass(frozen=True)
class Evaluated:
    """The champion's metric on its test rows, with its standard error when the gate recorded one."""

    value: float
    se: float | None = None
    source: str = ""


@dataclass(frozen=True)
class Performance:
    """The champion's metric on the labelled window against its evaluated one; ``note``: why not judged."""

    metric: str
    rows: int
    max_drop: float
    evaluated: Evaluated | None = None
    window: float | None = None
    difference: Interval | None = None
    note: str | None = None
    source: str = "the window rescored by the champion"

    @property
    def dropped(self) -> bool:
        """Whether the whole interval of ``window − evaluated`` lies below ``-max_drop``."""
        return self.difference is not None and self.difference.high < -self.max_drop

    def describe(self) -> str:
        """One line: the numbers and the interval, or why the trigger was not judged."""
        if self.difference is None or self.window is None or self.evaluated is None:
            return f"performance not judged: {self.note}"
        verdict = "is below" if self.dropped else "is not below"
        what = (
            "the difference" if self.metric not in LOWER_IS_BETTER else "evaluated - window (lower is better)"
        )
        return (
            f"champion {self.metric} {self.window:.4f} on {self.rows} labelled rows vs "
            f"{self.evaluated.value:.4f} evaluated: {self.difference.describe(what)} "
            f"{verdict} -drift.max_performance_drop {self.max_drop:g}"
        )


def check_performance(
    labels: pd.Series,
    proba: np.ndarray,
    event_times: Any,
    evaluated: Evaluated | None,
    cfg: DriftConfig,
    gate: PromoteConfig,
    seed: int = 0,
    classes: tuple[str, ...] | None = None,
) -> Performance:
    """The champion's ``cfg.performance_metric`` on the labelled rows of the window, against ``evaluated``.

    For a lower-is-better metric (RMSE, MAE, log-loss) the difference is oriented, ``evaluated −
    window``, so that a worse champion is a negative difference whatever the metric; ``classes``: the
    multiclass labels (``proba`` is then ``[n, k]``).

    Rows without a label are left out. Blocks of ``gate.block`` event time; at least
    ``gate.min_blocks`` of them, with ``gate.bootstrap_rounds`` rounds at
    ``gate.confidence``, as the promotion gate judges.
    """
    metric = cfg.performance_metric
    present = pd.Series(labels).notna().to_numpy()
    y = task_labels(pd.Series(labels)[present].to_numpy(), metric, classes)  # positions, whatever the index
    base = Performance(metric, int(present.sum()), cfg.max_performance_drop, evaluated)
    if evaluated is None:
        return _unjudged(
            base, f"the champion has no evaluated {metric} recorded (gate tags or test_{metric})"
        )
    if len(np.unique(y)) < 2:
        return _unjudged(base, f"the {len(y)} labelled rows of the window hold one class")
    times = event_times if isinstance(event_times, pd.Series) else pd.Series(event_times)
    ids = block_ids(times.reset_index(drop=True)[present], gate.block)
    blocks = int(ids.max()) + 1
    if blocks < gate.min_blocks:
        return _unjudged(
            base,
            f"the labelled rows span {blocks} block{'s' if blocks != 1 else ''} of {gate.block}, fewer than "
            f"promote.min_blocks {gate.min_blocks}",
        )
    p = np.asarray(proba, dtype="float64")[present]
    window = bootstrap_metric(y, p, metric, gate.bootstrap_rounds, gate.confidence, ids, seed, gate.block)
    point = metric_value(metric, y, p)
    if metric in LOWER_IS_BETTER:  # judged oriented: evaluated − window, negative when the champion worsened
        flipped = Interval(
            -window.mean,
            -window.high,
            -window.low,
            window.confidence,
            window.blocks,
            window.block,
            window.rounds,
            window.se,
        )
        oriented = Evaluated(-evaluated.value, evaluated.se, evaluated.source)
        gap = difference(flipped, -point, oriented, gate.confidence)
    else:
        gap = difference(window, point, evaluated, gate.confidence)
    return Performance(metric, len(y), cfg.max_performance_drop, evaluated, point, gap)


def task_labels(values: np.ndarray, metric: str, classes: tuple[str, ...] | None) -> np.ndarray:
    """Labels as ``metric`` reads them: 0/1, class codes (``classes``), or numbers (regression)."""
    if metric in TASK_METRICS["regression"]:
        return np.asarray(values, dtype="float64")
    if metric in TASK_METRICS["multiclass"]:
        return class_codes(values, classes or ())
    return np.asarray(values).astype("int64")


def difference(window: Interval, point: float, evaluated: Evaluated, confidence: float) -> Interval:
    """``window − evaluated``: the window's percentile interval, widened by the evaluated metric's error.

    Each bound's distance from the point difference is combined in quadrature with
    ``z * evaluated.se`` (the two are independent: different rows, different times).
    """
    center = point - evaluated.value
    extra = float(norm.ppf(0.5 + confidence / 2)) * (evaluated.se or 0.0)
    low = center - float(np.hypot(point - window.low, extra))
    high = center + float(np.hypot(window.high - point, extra))
    se = float(np.hypot(window.se or 0.0, evaluated.se or 0.0))
    return Interval(
        window.mean - evaluated.value,
        low,
        high,
        confidence,
        blocks=window.blocks,
        block=window.block,
        rounds=window.rounds,
        se=se,
    )


def evaluated_from(
    version_tags: dict[str, str], run_metrics: dict[str, float], metric: str
) -> Evaluated | None:
    """The champion's evaluated ``metric``: the gate's score on its test rows with the block-bootstrap
    standard error (``flywheel.gate.candidate`` and ``flywheel.gate.evaluated`` on the model version), else
    the evaluate stage's ``test_<metric>`` of its run (no standard error), else None.
    """
    try:
        scores = json.loads(version_tags.get("flywheel.gate.candidate") or "null") or {}
        intervals = json.loads(version_tags.get("flywheel.gate.evaluated") or "null") or {}
    except ValueError:
        scores, intervals = {}, {}
    value = scores.get(metric)
    if isinstance(value, int | float) and np.isfinite(value):
        se = (intervals.get(metric) or {}).get("se")
        return Evaluated(
            float(value), float(se) if se is not None else None, "the gate's score on its test rows"
        )
    value = run_metrics.get(f"test_{metric}")
    if value is not None and np.isfinite(value):
        return Evaluated(float(value), None, f"test_{metric} of its training run")
    return None


def _unjudged(base: Performance, note: str) -> Performance:
    return Performance(base.metric, base.rows, base.max_drop, base.evaluated, note=note)
