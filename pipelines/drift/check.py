"""The drift check's core: Evidently's data-drift report of two frames, fast on large windows.

:func:`compare` takes the reference rows (what the champion learned from) and the
current window, both raw rows of the schema, and returns a
:class:`~pipelines.drift.decision.DriftResult` with the Evidently snapshot it came
from. Every column name, type and ``critical`` flag comes from the schema.

**Large windows are sampled, with a stated power.** Evidently's ``DataDriftPreset``
costs about 21 s on 1M rows (2 cores), mostly histograms and per-column
bookkeeping. The column tests are distances (normed Wasserstein, Jensen-Shannon,
...) whose value does not depend on the sample size, only their noise does. So
each side is sampled to ``drift.sample_rows`` rows and the report runs on the
sample; then, per column, the sampling standard error of the score is estimated
from :data:`SE_PARTS` disjoint sub-samples, and a column whose sampled score lies
within :data:`Z` standard errors of the threshold is re-tested on every row with
the same Evidently test. A verdict kept from the sample differs from the
full-data verdict only if the sampled score is more than ``Z`` estimated standard
errors off: for a Student t with ``SE_PARTS - 1`` = 15 degrees of freedom,
P(T > 4) < 0.1% per column. ``benchmarks/bench_drift.py`` measures the agreement.

**Each column is judged against its own natural variation** (``drift.alarm: calibrated``,
the default): :func:`calibrations` measures, per column, the same distance between windows
of the reference (``drift.window_days`` long, the current window's length) and the rest of
it (:mod:`pipelines.drift.calibrate`), and the column's threshold is the
``drift.null_quantile`` of those distances. Evidently's report gets these thresholds, so its
HTML shows the verdicts the alarm uses. ``drift.alarm: fixed`` keeps one threshold,
``drift.column_threshold``, for every column. Prediction drift is always judged against
``drift.column_threshold``; it informs, it triggers nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from pipelines.common.config import DriftConfig, Schema
from pipelines.common.errors import FlywheelError
from pipelines.drift.calibrate import Calibration, calibrate, null_pairs, reference_windows
from pipelines.drift.decision import ColumnDrift, DriftResult
from pipelines.evaluate.metrics import ranking_metrics

log = logging.getLogger(__name__)

PREDICTION = "champion_probability"
Z = 4.0
SE_PARTS = 16

Predict = Callable[[pd.DataFrame], np.ndarray]


class DriftInputError(FlywheelError, ValueError):
    """The current window and the reference cannot be compared (missing columns, no reference rows)."""


@dataclass(frozen=True)
class DriftCheck:
    """A drift result and the Evidently snapshot behind it (None when nothing could be tested)."""

    result: DriftResult
    snapshot: Any | None = None


# -- preparing the frames ----------------------------------------------------------------------


def check_columns(
    reference: pd.DataFrame, current: pd.DataFrame, schema: Schema
) -> tuple[list[str], list[str]]:
    """``(columns to test, notes)``; a feature column missing from the current window is an error.

    A column the reference lacks (added to the schema after the champion was
    trained) is left out with a note.
    """
    missing = [c for c in schema.feature_names if c not in current.columns]
    if missing:
        raise DriftInputError(
            f"the current window lacks column(s) {missing}; expected the schema's columns "
            f"{list(schema.feature_names)}"
        )
    absent = [c for c in schema.feature_names if c not in reference.columns]
    notes = [f"column {c!r} is not in the champion's training data: not tested" for c in absent]
    return [c for c in schema.feature_names if c not in absent], notes


def model_frame(frame: pd.DataFrame, schema: Schema, columns: list[str]) -> pd.DataFrame:
    """The columns as Evidently reads them: numerics float64 (NaN when absent), categories object."""
    out = {}
    for name in columns:
        values = frame[name]
        if schema.column(name).is_numeric:
            out[name] = (
                pd.to_numeric(values, errors="coerce").astype("float64").replace([np.inf, -np.inf], np.nan)
            )
        else:
            out[name] = values.astype(object).where(values.notna(), None)
    return pd.DataFrame(out, index=frame.index)


def has_values(values: pd.Series, numeric: bool) -> bool:
    """Whether a raw column holds any usable value (a finite number, or any category)."""
    if not numeric:
        return bool(values.notna().any())
    return bool(
        np.isfinite(pd.to_numeric(values, errors="coerce").to_numpy("float64", na_value=np.nan)).any()
    )


def empty_columns(
    reference: pd.DataFrame, current: pd.DataFrame, schema: Schema, columns: list[str], cfg: DriftConfig
) -> dict[str, ColumnDrift]:
    """Columns with no value on one side or both, judged without a distribution test.

    No values in either window: skipped. Values on one side only: drifted (a feed
    stopped or started sending the column).
    """
    judged = {}
    for name in columns:
        numeric = schema.column(name).is_numeric
        ref_empty, cur_empty = (
            not has_values(reference[name], numeric),
            not has_values(current[name], numeric),
        )
        if not (ref_empty or cur_empty):
            continue
        if ref_empty and cur_empty:
            drifted, skipped, note = False, True, "no values in either window: not tested"
        elif cur_empty:
            drifted, skipped = True, False
            note = "all values are null in the current window; the reference has values"
        else:
            drifted, skipped, note = True, False, "the reference has no values; the current window has"
        judged[name] = ColumnDrift(
            name=name,
            method="presence",
            score=None,
            threshold=cfg.column_threshold,
            drifted=drifted,
            critical=schema.column(name).critical,
            skipped=skipped,
            note=note,
        )
    return judged


def sample(frame: pd.DataFrame, rows: int | None, seed: int) -> pd.DataFrame:
    """A seeded random sample of at most ``rows`` rows, in random order (the whole frame when smaller)."""
    if rows is None or len(frame) <= rows:
        return frame
    picked = np.random.default_rng(seed).choice(len(frame), size=rows, replace=False)
    return frame.iloc[picked]


# -- Evidently -------------------------------------------------------------------------------


def column_kind(schema: Schema, name: str) -> str:
    return "num" if name == PREDICTION or schema.column(name).is_numeric else "cat"


def method_of(kind: str, cfg: DriftConfig) -> str:
    return cfg.num_method if kind == "num" else cfg.cat_method


def run_evidently(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    schema: Schema,
    columns: list[str],
    cfg: DriftConfig,
    target: str | None = None,
    thresholds: dict[str, float] | None = None,
) -> Any:
    """Evidently's ``DataDriftPreset`` on ``columns``, prediction drift, and ROC-AUC if ``target`` is set.

    ``thresholds``: a column's own (calibrated) threshold; others use ``drift.column_threshold``.
    """
    from evidently import BinaryClassification, DataDefinition, Dataset, Report
    from evidently.metrics import RocAuc, ValueDrift
    from evidently.presets import DataDriftPreset

    numeric = [c for c in columns if column_kind(schema, c) == "num"]
    categorical = [c for c in columns if c not in numeric]
    has_prediction = PREDICTION in current.columns
    classification = (
        [BinaryClassification(target=target, prediction_probas=PREDICTION, pos_label=1)]
        if target and has_prediction
        else None
    )
    definition = DataDefinition(
        numerical_columns=numeric + ([PREDICTION] if has_prediction else []),
        categorical_columns=categorical,
        classification=classification,
    )
    items: list[Any] = []
    if columns:
        items.append(
            DataDriftPreset(
                columns=columns,
                num_method=cfg.num_method,
                cat_method=cfg.cat_method,
                threshold=cfg.column_threshold,
                per_column_threshold={c: t for c, t in (thresholds or {}).items() if c in columns} or None,
                drift_share=cfg.max_drift_share,
            )
        )
    if has_prediction:
        items.append(ValueDrift(column=PREDICTION, method=cfg.num_method, threshold=cfg.column_threshold))
    if classification:
        items.append(RocAuc())
    report = Report(items)
    return report.run(
        current_data=Dataset.from_pandas(current, data_definition=definition),
        reference_data=Dataset.from_pandas(reference, data_definition=definition),
    )


def drift_scores(snapshot: Any) -> dict[str, float]:
    """``{column: score}`` of every ``ValueDrift`` metric in an Evidently snapshot."""
    scores = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if str(config.get("type", "")).endswith(":ValueDrift"):
            scores[config["column"]] = float(metric["value"])
    return scores


def _clean(values: pd.Series) -> pd.Series:
    """What Evidently tests: the values without infinities and missing ones."""
    return values.replace([np.inf, -np.inf], np.nan).dropna()


def _scorer(kind: str, method: str, threshold: float) -> Callable[[pd.Series, pd.Series], float]:
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType

    column_type = ColumnType.Numerical if kind == "num" else ColumnType.Categorical
    test = get_stattest(pd.Series(dtype="float64"), pd.Series(dtype="float64"), column_type, method)
    return lambda ref, cur: float(test(ref, cur, column_type, threshold).drift_score)


def _distance(kind: str, method: str, threshold: float) -> Callable[[pd.Series, pd.Series], float]:
    """Evidently's test ``method`` as ``(reference, current) -> score``, cleaning as Evidently does."""
    score = _scorer(kind, method, threshold)

    def distance(reference: pd.Series, current: pd.Series) -> float:
        return score(_clean(reference), _clean(current))

    return distance


def stattest_score(
    reference: pd.Series, current: pd.Series, kind: str, method: str, threshold: float
) -> float:
    """The score of Evidently's own test ``method`` on two columns, cleaned as Evidently cleans them."""
    return _scorer(kind, method, threshold)(_clean(reference), _clean(current))


def standard_error(
    reference: pd.Series, current: pd.Series, kind: str, method: str, threshold: float, parts: int = SE_PARTS
) -> float:
    """The sampling standard error of the score at these sizes, from ``parts`` disjoint sub-samples.

    The score's variance falls as 1/n, so the spread of the scores of ``parts``
    sub-samples of ``n / parts`` rows, divided by ``sqrt(parts)``, estimates it at ``n``.
    Both series must already be in random order (see :func:`sample`).
    """
    score = _scorer(kind, method, threshold)
    ref, cur = _clean(reference), _clean(current)
    bounds = [(len(ref) * i // parts, len(cur) * i // parts) for i in range(parts + 1)]
    scores = [
        score(ref.iloc[r0:r1], cur.iloc[c0:c1])
        for (r0, c0), (r1, c1) in zip(bounds, bounds[1:], strict=False)
        if r1 > r0 and c1 > c0
    ]
    scores = [s for s in scores if np.isfinite(s)]
    return float(np.std(scores, ddof=1) / np.sqrt(len(scores))) if len(scores) > 2 else float("inf")


# -- the check ---------------------------------------------------------------------------------


def judge(
    name: str,
    score: float,
    schema: Schema,
    cfg: DriftConfig,
    note: str | None = None,
    calibration: Calibration | None = None,
) -> ColumnDrift:
    """A distance score against the column's threshold: drifted when it reaches it (Evidently's rule).

    The threshold is the column's calibrated one when ``calibration`` has it, else
    ``drift.column_threshold`` (and, when the calibration failed, the note says why).
    """
    kind = column_kind(schema, name)
    critical = name != PREDICTION and schema.column(name).critical
    threshold, described = cfg.column_threshold, None
    if calibration is not None and calibration.threshold is not None:
        threshold, described = calibration.threshold, calibration.describe()
    elif calibration is not None:
        fallback = f"{calibration.describe()}; judged against drift.column_threshold {cfg.column_threshold:g}"
        note = f"{note}; {fallback}" if note else fallback
    return ColumnDrift(
        name,
        method_of(kind, cfg),
        score,
        threshold,
        bool(np.isfinite(score) and score >= threshold),
        critical,
        note=note,
        calibration=described,
    )


def calibrations(
    reference: pd.DataFrame, current_rows: int, schema: Schema, columns: list[str], cfg: DriftConfig
) -> dict[str, Calibration]:
    """Each column's threshold from its natural variation in the reference (``drift.alarm: calibrated``).

    Windows of ``drift.window_days`` of event time (the current window's length) are cut
    from the reference; each column's distance between a window and the rest of the
    reference, with Evidently's own test, makes its null. Empty with ``drift.alarm: fixed``.
    """
    if cfg.alarm != "calibrated" or not columns:
        return {}
    times = reference[schema.event_time] if schema.event_time in reference.columns else None
    windows = reference_windows(
        times, timedelta(days=cfg.window_days), cfg.null_windows, cfg.min_null_windows
    )
    pairs = null_pairs(windows, len(reference), current_rows, cfg.seed)
    prepared = model_frame(reference, schema, columns)
    out = {}
    for name in columns:
        kind = column_kind(schema, name)
        distance = _distance(kind, method_of(kind, cfg), cfg.column_threshold)
        out[name] = calibrate(prepared[name], windows, pairs, distance, cfg.null_quantile, cfg.min_distance)
    return out


def confirm(
    column: ColumnDrift,
    full: tuple[pd.DataFrame, pd.DataFrame],
    sampled: tuple[pd.DataFrame, pd.DataFrame],
    schema: Schema,
    cfg: DriftConfig,
    calibration: Calibration | None = None,
) -> tuple[ColumnDrift, dict[str, float]]:
    """Keep a sampled verdict that is clearly on one side of the threshold; re-test the others in full.

    ``full`` are the raw frames, ``sampled`` the prepared samples (:func:`model_frame`);
    the threshold is the column's own (``column.threshold``).
    """
    kind = column_kind(schema, column.name)
    (ref_raw, cur_raw), (ref_s, cur_s) = full, sampled
    se = standard_error(ref_s[column.name], cur_s[column.name], kind, column.method, cfg.column_threshold)
    margin = abs((column.score or 0.0) - column.threshold)
    stats = {"score": column.score or 0.0, "se": se, "margin_se": margin / se if se > 0 else float("inf")}
    if margin > Z * se:
        return column, stats
    ref_full, cur_full = (
        model_frame(raw[[column.name]], schema, [column.name]) for raw in (ref_raw, cur_raw)
    )
    score = stattest_score(
        ref_full[column.name], cur_full[column.name], kind, column.method, cfg.column_threshold
    )
    note = (
        f"re-tested on all rows: the sampled score {column.score:.4f} was within {Z:g} standard errors "
        f"({se:.4f}) of the threshold"
    )
    return replace(judge(column.name, score, schema, cfg, note, calibration), critical=column.critical), {
        **stats,
        "full_score": score,
    }


def quality(labels: pd.Series, proba: np.ndarray) -> tuple[float | None, float | None, str | None]:
    """``(roc_auc, pr_auc, note)`` of the champion on labelled rows; None when the labels cannot judge it."""
    present = labels.notna().to_numpy()
    y = labels[present].astype("int64").to_numpy()
    if len(np.unique(y)) < 2:
        return None, None, f"labels of {int(present.sum())} current rows hold one class: quality not judged"
    p = proba[present]
    pr_auc, roc_auc = ranking_metrics(y, p)
    return roc_auc, pr_auc, None


def prediction_column(scores: np.ndarray) -> np.ndarray:
    """What prediction drift compares: the probability (binary), the prediction (regression), the
    probability of the predicted class (multiclass, ``[n, k]`` scores)."""
    scores = np.asarray(scores, dtype="float64")
    return scores.max(axis=1) if scores.ndim == 2 else scores


def add_predictions(
    windows: tuple[pd.DataFrame, pd.DataFrame],
    samples: tuple[pd.DataFrame, pd.DataFrame],
    schema: Schema,
    predict: Predict,
    notes: list[str],
) -> tuple[float | None, float | None, str | None]:
    """Score both samples with the champion (prediction drift).

    Returns ``(roc_auc, pr_auc, target)`` of the current sample.

    ``target`` is set (and the labels added to both samples) when Evidently can draw
    its ROC-AUC panel. A champion that cannot score the rows leaves a note, not a crash.
    """
    (reference, current), (ref_s, cur_s) = windows, samples
    features = list(schema.feature_names)
    try:
        ref_s[PREDICTION] = prediction_column(
            predict(reference.loc[ref_s.index, [c for c in features if c in reference.columns]])
        )
        cur_s[PREDICTION] = prediction_column(predict(current.loc[cur_s.index, features]))
    except Exception as exc:  # the report still says what it can; the note says why this part is missing
        ref_s.drop(columns=PREDICTION, errors="ignore", inplace=True)
        notes.append(f"the champion could not score the rows, no prediction drift or quality: {exc}")
        return None, None, None
    if schema.target not in current.columns or schema.task != "binary":  # others: the performance trigger
        return None, None, None
    roc_auc, pr_auc, note = quality(current.loc[cur_s.index, schema.target], cur_s[PREDICTION].to_numpy())
    if note:
        notes.append(note)
        return None, None, None
    if schema.target not in reference.columns or reference[schema.target].nunique() != 2:
        return roc_auc, pr_auc, None
    for window, frame in ((reference, ref_s), (current, cur_s)):  # Evidently's ROC-AUC panel, both windows
        frame[schema.target] = window.loc[frame.index, schema.target].astype("int64").to_numpy()
    return roc_auc, pr_auc, schema.target


def sparse_columns(
    samples: tuple[pd.DataFrame, pd.DataFrame],
    windows: tuple[pd.DataFrame, pd.DataFrame],
    schema: Schema,
    columns: list[str],
    cfg: DriftConfig,
    calibrated: dict[str, Calibration] | None = None,
) -> dict[str, ColumnDrift]:
    """Columns whose few values the sample missed on one side: tested on all rows instead."""
    judged = {}
    for name in columns:
        if all(has_values(frame[name], schema.column(name).is_numeric) for frame in samples):
            continue
        ref_full, cur_full = (model_frame(window[[name]], schema, [name])[name] for window in windows)
        kind = column_kind(schema, name)
        score = stattest_score(ref_full, cur_full, kind, method_of(kind, cfg), cfg.column_threshold)
        note = "too few values to sample: tested on all rows"
        judged[name] = judge(name, score, schema, cfg, note, (calibrated or {}).get(name))
    return judged


def compare(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    schema: Schema,
    cfg: DriftConfig,
    predict: Predict | None = None,
) -> DriftCheck:
    """Data drift per column, prediction drift and quality of ``current`` against ``reference``.

    Raises:
        DriftInputError: the reference is empty or the current window lacks a schema column.
    """
    if reference.empty:
        raise DriftInputError(
            "the reference (the champion's training data) has 0 rows; expected its train split"
        )
    columns, notes = check_columns(reference, current, schema)
    if len(current) < cfg.min_rows:
        notes.append(
            f"the current window has {len(current)} rows (< drift.min_rows {cfg.min_rows}): not tested"
        )
        return DriftCheck(DriftResult(len(current), len(reference), notes=tuple(notes)))
    set_aside = empty_columns(reference, current, schema, columns, cfg)
    tested = [c for c in columns if c not in set_aside]
    calibrated = calibrations(reference, len(current), schema, tested, cfg)
    ref_s = model_frame(sample(reference, cfg.sample_rows, cfg.seed), schema, tested)
    cur_s = model_frame(sample(current, cfg.sample_rows, cfg.seed + 1), schema, tested)
    sampled = len(ref_s) < len(reference) or len(cur_s) < len(current)
    set_aside |= sparse_columns((ref_s, cur_s), (reference, current), schema, tested, cfg, calibrated)
    tested = [c for c in tested if c not in set_aside]
    ref_s, cur_s = ref_s[tested].copy(), cur_s[tested].copy()
    roc_auc = pr_auc = target = None
    if predict is not None:
        roc_auc, pr_auc, target = add_predictions(
            (reference, current), (ref_s, cur_s), schema, predict, notes
        )
    has_items = bool(tested) or PREDICTION in cur_s.columns
    thresholds = {c: cal.threshold for c, cal in calibrated.items() if cal.threshold is not None}
    snapshot = run_evidently(ref_s, cur_s, schema, tested, cfg, target, thresholds) if has_items else None
    scores = drift_scores(snapshot) if snapshot is not None else {}
    judged: list[ColumnDrift] = []
    column_stats: dict[str, dict[str, float]] = {}
    sampling: dict[str, Any] = {
        "sampled": sampled,
        "reference_rows_used": len(ref_s),
        "current_rows_used": len(cur_s),
        "columns": column_stats,
    }
    for name in columns:
        if name in set_aside:
            judged.append(set_aside[name])
            continue
        column = judge(name, scores[name], schema, cfg, calibration=calibrated.get(name))
        if sampled:
            column, stats = confirm(
                column, (reference, current), (ref_s, cur_s), schema, cfg, calibrated.get(name)
            )
            column_stats[name] = stats
        judged.append(column)
    prediction = judge(PREDICTION, scores[PREDICTION], schema, cfg) if PREDICTION in scores else None
    result = DriftResult(
        len(current), len(reference), tuple(judged), prediction, roc_auc, pr_auc, tuple(notes), sampling
    )
    return DriftCheck(result, snapshot)
