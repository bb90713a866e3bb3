"""The evaluation gate: pure functions from scores to a verdict with its reason.

:func:`decide` is the verdict: the candidate must meet the floors and, against a
champion, the interval of candidate − champion must clear the margin.
:func:`bootstrap_difference` computes that interval on the same held-out rows for
both models, and :func:`score` the metrics behind it (from :mod:`pipelines.evaluate.metrics`,
their one implementation). Nothing here reads a file or talks to MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines.common.config import PromoteConfig
from pipelines.common.errors import FlywheelError
from pipelines.evaluate.metrics import metric as metric_value


class PromoteError(FlywheelError):
    """Promotion cannot be decided or carried out."""


@dataclass(frozen=True)
class Scores:
    """A model's metrics on the held-out rows."""

    roc_auc: float
    pr_auc: float

    def get(self, metric: str) -> float:
        """The score of ``metric`` (``roc_auc`` or ``pr_auc``)."""
        return float(getattr(self, metric))


@dataclass(frozen=True)
class Interval:
    """A bootstrap confidence interval of ``candidate - champion`` on one metric."""

    mean: float
    low: float
    high: float
    confidence: float


@dataclass(frozen=True)
class Decision:
    """The gate's verdict with its reason."""

    promote: bool
    reason: str
    forced: bool = False


def decide(
    candidate: Scores,
    champion: Scores | None,
    policy: PromoteConfig,
    force: bool = False,
    force_reason: str | None = None,
    difference: Interval | None = None,
) -> Decision:
    """Promote when the candidate meets the floors and beats the champion by the margin, with confidence.

    With a champion, ``difference`` (the bootstrap interval of candidate minus
    champion on ``policy.metric``) decides: its lower bound must reach
    ``policy.min_improvement``. Without an interval the point difference is used.
    """
    if force:
        return Decision(True, f"forced: {forced_reason(force_reason)}", forced=True)
    floors = {"roc_auc": policy.min_roc_auc, "pr_auc": policy.min_pr_auc}
    for metric, floor in floors.items():
        if candidate.get(metric) < floor:
            return Decision(
                False, f"candidate {metric} {candidate.get(metric):.4f} is below the floor {floor}"
            )
    if champion is None:
        return Decision(True, "no champion yet; candidate meets the floors")
    metric, cand, champ = policy.metric, candidate.get(policy.metric), champion.get(policy.metric)
    low = difference.low if difference else cand - champ
    shown = (
        f"{difference.confidence:.0%} CI of the difference [{difference.low:+.4f}, {difference.high:+.4f}]"
        if difference
        else f"difference {cand - champ:+.4f}"
    )
    verdict = f"candidate {metric} {cand:.4f} vs champion {champ:.4f}: {shown}"
    if low < policy.min_improvement:
        return Decision(False, f"{verdict} does not clear the margin {policy.min_improvement:+.4f}")
    return Decision(True, f"{verdict} clears the margin {policy.min_improvement:+.4f}")


def forced_reason(force_reason: str | None) -> str:
    """The reason given for a forced promotion, stripped; a forced promotion needs one."""
    reason = (force_reason or "").strip()
    if not reason:
        raise PromoteError("force_promote=true needs a non-empty reason; expected force_reason='why'")
    return reason


def bootstrap_difference(
    labels: np.ndarray,
    candidate: np.ndarray,
    champion: np.ndarray,
    metric: str,
    rounds: int,
    confidence: float,
    seed: int = 0,
    max_rows: int = 20_000,
) -> Interval:
    """Paired bootstrap of ``metric(candidate) - metric(champion)`` over the same resampled rows.

    Large test sets are first thinned to ``max_rows`` rows (a seeded, stratified
    sample) so the gate stays fast; resamples holding one class only are skipped.
    """
    rng = np.random.default_rng(seed)
    rows = _stratified(labels, max_rows, rng)
    labels, candidate, champion = labels[rows], candidate[rows], champion[rows]
    diffs = []
    for _ in range(rounds):
        pick = rng.integers(0, len(labels), len(labels))
        if labels[pick].min() == labels[pick].max():
            continue
        diffs.append(
            metric_value(metric, labels[pick], candidate[pick])
            - metric_value(metric, labels[pick], champion[pick])
        )
    if not diffs:
        raise PromoteError(
            f"bootstrap of {metric} needs both classes in the test rows; got {len(labels)} rows"
        )
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(diffs, [tail, 100 - tail])
    return Interval(float(np.mean(diffs)), float(low), float(high), confidence)


def _stratified(labels: np.ndarray, max_rows: int, rng: np.random.Generator) -> np.ndarray:
    if len(labels) <= max_rows:
        return np.arange(len(labels))
    keep = []
    for value in np.unique(labels):
        where = np.flatnonzero(labels == value)
        keep.append(rng.choice(where, max(1, round(max_rows * len(where) / len(labels))), replace=False))
    return np.sort(np.concatenate(keep))


def score(probabilities: np.ndarray, labels: np.ndarray) -> Scores:
    """ROC-AUC and PR-AUC of predicted probabilities."""
    return Scores(
        roc_auc=metric_value("roc_auc", labels, probabilities),
        pr_auc=metric_value("pr_auc", labels, probabilities),
    )
