"""The evaluation gate: pure functions from held-out scores to a verdict with its reason.

:func:`judge` is the whole gate on the test rows: it scores both models (with
:mod:`pipelines.evaluate.metrics`, their one implementation), groups the rows into
blocks of event time (:func:`block_ids`), bootstraps candidate − champion over whole
blocks (:func:`bootstrap_difference`) and lets :func:`decide` give the verdict: the
candidate must meet the floors and the interval's lower bound must clear the margin.

Rows close in time are correlated (the same day's prices, weather, customers), so a
bootstrap over single rows pretends to far more independent evidence than there is
and its interval is too narrow; resampling whole blocks keeps that correlation inside
each resample. With fewer than ``promote.min_blocks`` blocks there is too little
independent evidence to decide, and the gate says so instead of guessing. A champion
that cannot score the test rows is a named condition, never "no champion yet".
Every :class:`Decision` names its ``condition`` and carries the numbers behind it.
Nothing here reads a file or talks to MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from pipelines.common.config import LOWER_IS_BETTER, TASK_METRICS, PromoteConfig, parse_duration
from pipelines.common.errors import FlywheelError
from pipelines.evaluate.metrics import RANKING_METRICS, resampled_metric
from pipelines.evaluate.metrics import metric as metric_value

ROW = "row"  # the block label of a row bootstrap: every row its own block
MAX_CELLS = 2_000_000  # resampled rows x rounds held in memory at once

# The named conditions a decision records (``flywheel.gate.condition``).
FORCED = "forced"
ONE_CLASS = "one_class"
BELOW_FLOOR = "below_floor"
CHAMPION_UNSCORABLE = "champion_unscorable"
FIRST_CHAMPION = "first_champion"
TOO_FEW_BLOCKS = "too_few_blocks"
BELOW_MARGIN = "below_margin"
CLEARS_MARGIN = "clears_margin"


class PromoteError(FlywheelError):
    """Promotion cannot be decided or carried out."""


@dataclass(frozen=True)
class Scores:
    """A model's metrics on the held-out rows: ROC-AUC and PR-AUC of a binary model, or ``extra``,
    the metrics of another task (``rmse``, ``macro_f1``, ...)."""

    roc_auc: float = float("nan")
    pr_auc: float = float("nan")
    extra: dict[str, float] = field(default_factory=dict)

    def get(self, metric: str) -> float:
        """The score of ``metric``."""
        return float(self.extra[metric]) if metric in self.extra else float(getattr(self, metric))

    def as_dict(self) -> dict[str, float]:
        """The scores by metric name: ``roc_auc``, ``pr_auc`` for a binary model, else ``extra``."""
        return dict(self.extra) if self.extra else {"roc_auc": self.roc_auc, "pr_auc": self.pr_auc}

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metrics scored."""
        return tuple(self.extra) if self.extra else RANKING_METRICS


@dataclass(frozen=True)
class Interval:
    """A bootstrap confidence interval (of ``candidate - champion``, or of one model's metric).

    ``blocks`` is the number of blocks of event time the rows fell into and ``block``
    their length (``"row"``: a row bootstrap); ``rounds`` the resamples that could be
    scored; ``se`` the standard deviation of the resampled values.
    """

    mean: float
    low: float
    high: float
    confidence: float
    blocks: int = 0
    block: str = ""
    rounds: int = 0
    se: float | None = None

    def describe(self, of: str = "") -> str:
        """``90% CI [+0.0120, +0.0320] over 31 blocks of 1d (500 rounds)``; ``of`` names what it bounds."""
        shown = f"{self.confidence:.0%} CI{f' of {of}' if of else ''} [{self.low:+.4f}, {self.high:+.4f}]"
        if self.blocks:
            shown += f" over {self.blocks} blocks of {self.block} ({self.rounds} rounds)"
        return shown


@dataclass(frozen=True)
class Decision:
    """The gate's verdict, its reason, its named ``condition`` and the numbers behind it.

    ``blocks``/``block``: how many blocks of event time the test rows span, and their
    length; ``evaluated``: the candidate's own metrics with their block-bootstrap
    intervals (what the drift check's performance trigger compares a window with).
    """

    promote: bool
    reason: str
    forced: bool = False
    condition: str = ""
    candidate: Scores | None = None
    champion: Scores | None = None
    difference: Interval | None = None
    blocks: int | None = None
    block: str | None = None
    evaluated: dict[str, Interval] = field(default_factory=dict)


# -- the verdict -------------------------------------------------------------------------------


def decide(
    candidate: Scores,
    champion: Scores | None,
    policy: PromoteConfig,
    force: bool = False,
    force_reason: str | None = None,
    difference: Interval | None = None,
    blocks: int | None = None,
    champion_note: str | None = None,
) -> Decision:
    """Promote when the candidate meets the floors and beats the champion by the margin, with confidence.

    In order: a forced promotion (with its reason); a candidate the test rows cannot
    judge; the floors; a champion that exists but could not be scored
    (``champion_note`` says why; never taken for "no champion yet"); no champion; too
    few blocks of event time (``blocks`` < ``policy.min_blocks``, or the interval's own
    count); then ``difference`` (the block-bootstrap interval of candidate − champion on
    ``policy.metric``): its lower bound must reach ``policy.min_improvement``. Without an
    interval the point difference is used.
    """
    if force:
        return Decision(True, f"forced: {forced_reason(force_reason)}", forced=True, condition=FORCED)
    unjudged = [m for m in candidate.metrics if not np.isfinite(candidate.get(m))]
    if unjudged:
        return Decision(
            False,
            f"the test rows cannot judge the candidate's {', '.join(unjudged)} (they hold one class); "
            "expected both classes in the test split"
            if not candidate.extra
            else f"the test rows cannot judge the candidate's {', '.join(unjudged)}; expected labelled test "
            "rows with more than one target value",
            condition=ONE_CLASS,
        )
    for metric, floor in floors_of(candidate, policy).items():
        if candidate.get(metric) < floor:
            return Decision(
                False,
                f"candidate {metric} {candidate.get(metric):.4f} is below the floor {floor}",
                condition=BELOW_FLOOR,
            )
    if champion is None and champion_note is not None:
        return Decision(
            False,
            f"{champion_note}; the candidate cannot be compared with the champion, so it is not promoted "
            "(promote with force and a reason to replace the champion anyway)",
            condition=CHAMPION_UNSCORABLE,
        )
    if champion is None:
        return Decision(True, "no champion yet; candidate meets the floors", condition=FIRST_CHAMPION)
    span = blocks if blocks is not None else (difference.blocks if difference and difference.blocks else None)
    if span is not None and span < policy.min_blocks:
        return Decision(False, too_few_blocks(span, policy), condition=TOO_FEW_BLOCKS)
    return _against_margin(candidate, champion, policy, difference)


def floors_of(candidate: Scores, policy: PromoteConfig) -> dict[str, float]:
    """The floors that apply to the candidate's task: ROC-AUC and PR-AUC (binary), macro-F1
    (multiclass), R² when ``promote.min_r2`` is set (regression)."""
    if not candidate.extra:
        return {"roc_auc": policy.min_roc_auc, "pr_auc": policy.min_pr_auc}
    if "macro_f1" in candidate.extra:
        return {"macro_f1": policy.min_macro_f1}
    return {"r2": policy.min_r2} if policy.min_r2 is not None else {}


def too_few_blocks(blocks: int, policy: PromoteConfig) -> str:
    """The reason the gate refuses to decide on ``blocks`` blocks of event time."""
    return (
        f"the test rows span {blocks} block{'s' if blocks != 1 else ''} of {policy.block}, fewer than "
        f"promote.min_blocks {policy.min_blocks}: too little independent evidence to decide; expected "
        "a longer test split or a shorter promote.block"
    )


def _against_margin(
    candidate: Scores, champion: Scores, policy: PromoteConfig, difference: Interval | None
) -> Decision:
    metric, cand, champ = policy.metric, candidate.get(policy.metric), champion.get(policy.metric)
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0  # the difference is oriented: positive is better
    low = difference.low if difference else sign * (cand - champ)
    what = "the difference" if sign > 0 else "the improvement (champion - candidate: lower is better)"
    shown = difference.describe(what) if difference else f"{what} {sign * (cand - champ):+.4f}"
    verdict = f"candidate {metric} {cand:.4f} vs champion {champ:.4f}: {shown}"
    if low < policy.min_improvement:
        return Decision(
            False,
            f"{verdict} does not clear the margin {policy.min_improvement:+.4f}",
            condition=BELOW_MARGIN,
        )
    return Decision(
        True, f"{verdict} clears the margin {policy.min_improvement:+.4f}", condition=CLEARS_MARGIN
    )


def forced_reason(force_reason: str | None) -> str:
    """The reason given for a forced promotion, stripped; a forced promotion needs one."""
    reason = (force_reason or "").strip()
    if not reason:
        raise PromoteError("force_promote=true needs a non-empty reason; expected force_reason='why'")
    return reason


def judge(
    labels: np.ndarray,
    candidate_proba: np.ndarray,
    champion_proba: np.ndarray | None,
    event_times: Any,
    policy: PromoteConfig,
    force: bool = False,
    force_reason: str | None = None,
    champion_note: str | None = None,
    seed: int = 0,
    task: str = "binary",
) -> Decision:
    """The whole gate on the test rows: scores, blocks of event time, block bootstrap, floors, verdict.

    ``task``: binary (labels 0/1, probabilities), multiclass (class codes, ``[n, k]`` probabilities)
    or regression (targets, predictions); the gate's metric and its direction follow it.

    ``champion_proba`` is None when there is no champion, or when it exists but
    could not score the rows: then ``champion_note`` says why, and the candidate is
    not promoted unless forced. Probabilities that are not finite count as "could not
    score". The returned decision carries the scores, the interval, the block count
    and the candidate's own intervals (``evaluated``).
    """
    labels = np.asarray(labels).astype("float64" if task == "regression" else "int64")
    cand = np.asarray(candidate_proba, dtype="float64")
    if len(cand) != len(labels):
        raise PromoteError(f"{len(cand)} candidate probabilities for {len(labels)} test rows")
    ids = block_ids(event_times, policy.block)
    n_blocks = int(ids.max()) + 1 if len(ids) else 0
    candidate = score(cand, labels, task)
    champ, champ_scores = None, None
    if champion_proba is not None:
        champ = np.asarray(champion_proba, dtype="float64")
        if champ.shape != cand.shape or not np.isfinite(champ).all():
            champion_note = champion_note or (
                f"the champion's probabilities are not a finite number for each of the {len(labels)} "
                "test rows"
            )
            champ = None
        else:
            champ_scores = score(champ, labels, task)
    distinct = len(np.unique(labels))
    decidable = n_blocks >= policy.min_blocks and (distinct == 2 if task == "binary" else distinct > 1)
    difference = None
    if champ is not None and decidable:
        difference = bootstrap_difference(
            labels,
            cand,
            champ,
            policy.metric,
            policy.bootstrap_rounds,
            policy.confidence,
            ids,
            seed=seed,
            block=policy.block,
        )
    evaluated = (
        {
            m: bootstrap_metric(
                labels, cand, m, policy.bootstrap_rounds, policy.confidence, ids, seed, policy.block
            )
            for m in TASK_METRICS[task]
        }
        if decidable
        else {}
    )
    decision = decide(
        candidate,
        champ_scores,
        policy,
        force,
        force_reason,
        difference,
        blocks=n_blocks,
        champion_note=champion_note,
    )
    return replace(
        decision,
        candidate=candidate,
        champion=champ_scores,
        difference=difference,
        blocks=n_blocks,
        block=policy.block,
        evaluated=evaluated,
    )


def score(probabilities: np.ndarray, labels: np.ndarray, task: str = "binary") -> Scores:
    """ROC-AUC and PR-AUC of predicted probabilities; the metrics of ``task`` for another task."""
    if task != "binary":
        return Scores(extra={m: metric_value(m, labels, probabilities) for m in TASK_METRICS[task]})
    return Scores(
        roc_auc=metric_value("roc_auc", labels, probabilities),
        pr_auc=metric_value("pr_auc", labels, probabilities),
    )


# -- the block bootstrap -----------------------------------------------------------------------


def block_ids(event_times: Any, block: str) -> np.ndarray:
    """The block of event time of each row: ``0, 1, ...`` in time order, one id per ``block`` of time.

    Blocks are aligned on the Unix epoch (``1d``: UTC days), so the same rows always
    fall into the same blocks; only blocks that hold rows get an id.

    Raises:
        PromoteError: an event time is missing or not a time.
    """
    length = parse_duration(block)
    times = event_times if isinstance(event_times, pd.Series) else pd.Series(np.asarray(event_times))
    if pd.api.types.is_numeric_dtype(times) and not pd.api.types.is_bool_dtype(times):
        raise PromoteError(
            f"event times of dtype {times.dtype} are numbers; expected times (datetimes or ISO-8601 text)"
        )
    if pd.api.types.is_datetime64_any_dtype(times):
        times = pd.to_datetime(times, utc=True)
    else:
        times = pd.to_datetime(times, utc=True, errors="coerce", format="ISO8601")
    if times.isna().any():
        raise PromoteError(
            f"{int(times.isna().sum())} of {len(times)} rows have no valid event time; expected a time "
            "on every test row to group them into blocks of promote.block"
        )
    nanos = times.to_numpy(dtype="datetime64[ns]").astype("int64")
    step = int(length.total_seconds() * 1_000_000_000)
    _, ids = np.unique(np.floor_divide(nanos, step), return_inverse=True)
    return ids.astype("int64")


def bootstrap_difference(
    labels: np.ndarray,
    candidate: np.ndarray,
    champion: np.ndarray,
    metric: str,
    rounds: int,
    confidence: float,
    blocks: np.ndarray,
    seed: int = 0,
    block: str | None = None,
    max_rows: int = 20_000,
) -> Interval:
    """Paired block bootstrap of ``metric(candidate) - metric(champion)`` over the same resamples,
    oriented so that positive is better (``champion - candidate`` for RMSE, MAE, log-loss).

    ``blocks`` holds each row's block id (:func:`block_ids`; ``np.arange(n)`` for a row
    bootstrap). A resample draws as many blocks as there are, with replacement, and
    keeps every row of a drawn block; both models are scored on that union. Seeded:
    the same inputs give the same interval. Test sets above ``max_rows`` rows are
    first thinned by a seeded stratified sample of rows, the same share of every class
    from every block, so blocks stay whole units of the resampling; resamples holding
    one class only are skipped.
    """
    (cand, champ), count = _replicates(labels, (candidate, champion), metric, rounds, blocks, seed, max_rows)
    diffs = champ - cand if metric in LOWER_IS_BETTER else cand - champ  # oriented: positive is better
    diffs = diffs[np.isfinite(diffs)]
    if not len(diffs):
        raise PromoteError(
            f"bootstrap of {metric} needs both classes in the test rows; got {len(labels)} rows"
        )
    return _interval(diffs, confidence, count, block or _label(count, len(labels)))


def bootstrap_metric(
    labels: np.ndarray,
    proba: np.ndarray,
    metric: str,
    rounds: int,
    confidence: float,
    blocks: np.ndarray,
    seed: int = 0,
    block: str | None = None,
    max_rows: int = 20_000,
) -> Interval:
    """Block bootstrap of one model's ``metric`` on labelled rows (the one-sample variant).

    Same resampling as :func:`bootstrap_difference`; ``mean`` is the mean of the
    resampled values and ``se`` their standard deviation.
    """
    (values,), count = _replicates(labels, (proba,), metric, rounds, blocks, seed, max_rows)
    values = values[np.isfinite(values)]
    if not len(values):
        raise PromoteError(f"bootstrap of {metric} needs both classes in the rows; got {len(labels)} rows")
    return _interval(values, confidence, count, block or _label(count, len(labels)))


def _label(blocks: int, rows: int) -> str:
    return ROW if blocks == rows else "given blocks"


def _interval(values: np.ndarray, confidence: float, blocks: int, block: str) -> Interval:
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return Interval(
        float(np.mean(values)),
        float(low),
        float(high),
        confidence,
        blocks=blocks,
        block=block,
        rounds=len(values),
        se=float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
    )


def _replicates(
    labels: np.ndarray,
    probas: tuple[np.ndarray, ...],
    metric: str,
    rounds: int,
    blocks: np.ndarray,
    seed: int,
    max_rows: int,
) -> tuple[list[np.ndarray], int]:
    """``metric`` of each model on ``rounds`` block resamples (NaN where one class only); the block count."""
    labels, blocks = np.asarray(labels), np.asarray(blocks)
    if len(blocks) != len(labels) or any(len(p) != len(labels) for p in probas):
        raise PromoteError(
            f"the bootstrap needs one block id and one probability per row; got {len(labels)} labels, "
            f"{len(blocks)} block ids and {[len(p) for p in probas]} probabilities"
        )
    if not len(labels):
        raise PromoteError("the bootstrap got 0 rows; expected labelled test rows")
    rng = np.random.default_rng(seed)
    rows = _stratified(labels, max_rows, rng)
    labels = labels[rows]
    _, ids = np.unique(blocks[rows], return_inverse=True)
    count = int(ids.max()) + 1
    kept = [np.asarray(p, dtype="float64")[rows] for p in probas]
    out: list[list[np.ndarray]] = [[] for _ in probas]
    chunk = max(1, MAX_CELLS // len(labels))
    for start in range(0, rounds, chunk):
        weights = _drawn(rng, count, min(chunk, rounds - start))[:, ids]  # a row as often as its block
        for values, proba in zip(out, kept, strict=True):
            values.append(resampled_metric(metric, labels, proba, weights))
    return [np.concatenate(values) for values in out], count


def _drawn(rng: np.random.Generator, blocks: int, rounds: int) -> np.ndarray:
    """How often each block is drawn, per round: ``blocks`` draws with replacement, ``(rounds, blocks)``."""
    picks = rng.integers(0, blocks, size=(rounds, blocks)) + blocks * np.arange(rounds)[:, None]
    return np.bincount(picks.ravel(), minlength=rounds * blocks).reshape(rounds, blocks)


def _stratified(labels: np.ndarray, max_rows: int, rng: np.random.Generator) -> np.ndarray:
    if len(labels) <= max_rows:
        return np.arange(len(labels))
    if np.issubdtype(labels.dtype, np.floating):  # a regression target: a plain sample of rows
        return np.sort(rng.choice(len(labels), max_rows, replace=False))
    keep = []
    for value in np.unique(labels):
        where = np.flatnonzero(labels == value)
        keep.append(rng.choice(where, max(1, round(max_rows * len(where) / len(labels))), replace=False))
    return np.sort(np.concatenate(keep))
