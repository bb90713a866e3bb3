"""Calibrated drift alarms: each column judged against its own natural variation.

A fixed distance threshold (normed Wasserstein 0.1) says "drift" every month on data
that moves all the time (prices, demand, weather): the alarm fires on every window and
tells nobody anything. Instead, the reference itself (the champion's training rows, in
event-time order) shows how far a window of the current window's length strays from the
rest of the reference when nothing has changed. :func:`reference_windows` places
``drift.null_windows`` such windows at evenly spaced start times over the reference
(they overlap, as the blocks of a moving-block bootstrap do: enough of them to see the
tail of the distribution, each a contiguous stretch of time with its own day-to-day
movement and its own rare values); the distance between each window and the rest of the
reference is that column's null distribution (:func:`null_distribution`). A column
drifts when the current window's distance reaches :func:`threshold_of` its null: the
``drift.null_quantile`` of the null, and at least ``drift.min_distance``. As the windows
overlap, the null holds fewer independent draws than windows, and its far tail (a
0.99 quantile) is uncertain: the threshold is also at least the same quantile's
prediction bound for log-normal distances whose centre and spread are estimated from
that many independent windows (:func:`prediction_bound`, Student's t), so a short
reference errs towards fewer alarms, not more.

Sizes are matched so the null carries no less sampling noise than the real comparison:
each window is sampled to at most the current window's rows (and :data:`WINDOW_ROWS`),
the rest of the reference to at most :data:`REST_ROWS`. A window with fewer rows than the
current one is noisier, which errs towards fewer alarms. A reference spanning fewer
than ``drift.min_null_windows`` window lengths gets shorter windows (noisier, again
towards fewer alarms); one too small for windows of :data:`MIN_WINDOW_ROWS` rows is not
calibrated, ``note`` says why, and the caller falls back to the fixed threshold.

Pure: the distance is passed in as a function, so this module knows no Evidently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd
from scipy.stats import t as t_dist

WINDOW_ROWS = 2_000  # the most rows of a window in one null comparison (bounds the cost)
REST_ROWS = 10_000  # the most rows of the rest of the reference in one null comparison
MIN_WINDOW_ROWS = 20  # a window with fewer rows says nothing about a column's variation
TINY = 1e-9  # a zero distance, as a log

Distance = Callable[[pd.Series, pd.Series], float]


@dataclass(frozen=True)
class Windows:
    """Row positions of the reference's windows, how they were cut, and why not when they could not be.

    ``independent``: how many non-overlapping windows the reference holds (the null's
    independent draws).
    """

    rows: tuple[np.ndarray, ...]
    how: str
    note: str | None = None
    independent: int = 0


@dataclass(frozen=True)
class Calibration:
    """A column's null distribution summed up, and the threshold it gives (None: not calibrated, ``note``)."""

    threshold: float | None
    quantile: float
    windows: int
    how: str
    null_median: float | None = None
    null_max: float | None = None
    note: str | None = None
    independent: int = 0

    def describe(self) -> str:
        """``the 0.99 quantile of its distances over 100 windows of 1 day of the reference (30 disjoint)``."""
        if self.threshold is None:
            return f"not calibrated: {self.note}"
        disjoint = f" ({self.independent} disjoint)" if self.independent else ""
        return f"the {self.quantile:g} quantile of its distances over {self.how}{disjoint}"


def _length(length: timedelta) -> str:
    days = length.total_seconds() / 86400
    if days >= 1:
        return f"{days:.3g} day{'s' if days != 1 else ''}"
    return f"{length.total_seconds() / 3600:.3g} h"


def reference_windows(
    event_times: pd.Series | None,
    length: timedelta,
    draws: int,
    min_windows: int,
    min_rows: int = MIN_WINDOW_ROWS,
) -> Windows:
    """``draws`` windows of ``length`` of event time, at evenly spaced starts over the reference.

    Windows overlap when the reference spans fewer than ``draws`` lengths. A reference
    spanning fewer than ``min_windows`` lengths gets windows of ``1 / min_windows`` of its
    span instead; without event times, windows are runs of ``1 / min_windows`` of the rows
    in row order. Windows holding fewer than ``min_rows`` rows are left out; when none is
    left, ``note`` says why.
    """
    n = 0 if event_times is None else len(event_times)
    times = pd.to_datetime(event_times, utc=True, errors="coerce") if event_times is not None else None
    if times is None or n == 0 or times.isna().any():
        return _row_windows(n, draws, min_windows, min_rows)
    order = np.argsort(times.to_numpy(dtype="datetime64[ns]"), kind="stable")
    nanos = times.to_numpy(dtype="datetime64[ns]").astype("int64")[order]
    span, size = int(nanos[-1] - nanos[0]), int(length.total_seconds() * 1_000_000_000)
    how = f"{draws} windows of {_length(length)} of the reference"
    if span < min_windows * size:
        size = span // min_windows
        how = (
            f"{draws} windows of {_length(timedelta(microseconds=size / 1000))} of the reference (it spans "
            f"{_length(timedelta(microseconds=span / 1000))}, fewer than drift.min_null_windows "
            f"{min_windows} windows of {_length(length)})"
        )
    if size <= 0:
        return _row_windows(n, draws, min_windows, min_rows)
    starts = np.linspace(nanos[0], nanos[0] + span - size, draws).astype("int64")
    lows, highs = np.searchsorted(nanos, starts), np.searchsorted(nanos, starts + size)
    rows = tuple(order[lo:hi] for lo, hi in zip(lows, highs, strict=True) if hi - lo >= min_rows)
    if not rows:
        return Windows((), how, note=f"no window of the reference holds {min_rows} rows ({n} rows in all)")
    return Windows(rows, how, independent=min(len(rows), max(1, round(span / size))))


def _row_windows(n: int, draws: int, min_windows: int, min_rows: int) -> Windows:
    """Without event times: ``draws`` runs of ``n / min_windows`` rows, at evenly spaced offsets."""
    size = n // min_windows
    if size < min_rows:
        return Windows(
            (),
            "",
            note=(
                f"the reference has {n} rows, too few for windows of at least {min_rows} rows "
                f"(1 / drift.min_null_windows {min_windows} of it)"
            ),
        )
    offsets = np.linspace(0, n - size, draws).round().astype("int64")
    return Windows(
        tuple(np.arange(o, o + size) for o in offsets),
        f"{draws} runs of {size} rows of the reference in row order (no event times)",
        independent=min(draws, min_windows),
    )


def null_pairs(
    windows: Windows, rows: int, window_rows: int, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Row positions of each null comparison: ``(rest of the reference, window)``, both sampled.

    Each window is sampled to at most ``window_rows`` (the current window's rows) and
    :data:`WINDOW_ROWS` rows, the rest of the reference to :data:`REST_ROWS`. Computed once,
    used for every column. Seeded.
    """
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(rows)
    pairs = []
    for window in windows.rows:
        inside = np.zeros(rows, dtype=bool)
        inside[window] = True
        head = shuffled[: REST_ROWS + len(window)]
        rest = np.sort(head[~inside[head]][:REST_ROWS])
        pairs.append((rest, _at_most(window, min(window_rows, WINDOW_ROWS), rng)))
    return pairs


def null_distribution(
    values: pd.Series, pairs: list[tuple[np.ndarray, np.ndarray]], distance: Distance
) -> np.ndarray:
    """``distance(rest of the reference, window)`` for every pair: the column's natural variation.

    ``values`` is the prepared column of the reference (positions as in ``pairs``).
    Distances that are not finite (a window without values) are left out.
    """
    scores = [distance(values.iloc[rest], values.iloc[window]) for rest, window in pairs]
    return np.asarray([s for s in scores if np.isfinite(s)], dtype="float64")


def _at_most(rows: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    return rows if len(rows) <= size else np.sort(rng.choice(rows, size, replace=False))


def threshold_of(null: np.ndarray, quantile: float, min_distance: float, independent: int = 0) -> float:
    """The distance a column must reach to drift: the ``quantile`` of its null, at least ``min_distance``.

    With ``independent`` (>= 3) non-overlapping windows behind the null, at least its
    :func:`prediction_bound` too.
    """
    bound = prediction_bound(null, quantile, independent) if independent >= 3 else 0.0
    return max(float(np.quantile(null, quantile)), bound, min_distance)


def prediction_bound(null: np.ndarray, quantile: float, independent: int) -> float:
    """The ``quantile`` bound of one more distance from the same log-normal as the null's.

    Centre and spread of the log distances are estimated from the null, with the
    uncertainty of ``independent`` draws: ``exp(m + t(quantile, k - 1) * s * sqrt(1 + 1/k))``.
    """
    logs = np.log(np.maximum(null, TINY))
    spread = float(np.std(logs, ddof=1)) if len(logs) > 1 else 0.0
    k = independent
    return float(np.exp(np.mean(logs) + t_dist.ppf(quantile, k - 1) * spread * np.sqrt(1 + 1 / k)))


def calibrate(
    values: pd.Series,
    windows: Windows,
    pairs: list[tuple[np.ndarray, np.ndarray]],
    distance: Distance,
    quantile: float,
    min_distance: float,
) -> Calibration:
    """One column's null distribution and threshold; a :class:`Calibration` with a note when there is none.

    A column with values in fewer than half of the windows is not calibrated.
    """
    if windows.note:
        return Calibration(None, quantile, 0, windows.how, note=windows.note)
    null = null_distribution(values, pairs, distance)
    if len(null) < max(2, len(pairs) / 2):
        return Calibration(
            None,
            quantile,
            len(null),
            windows.how,
            note=f"only {len(null)} of {len(pairs)} reference windows hold values of the column",
        )
    return Calibration(
        threshold_of(null, quantile, min_distance, windows.independent),
        quantile,
        len(null),
        windows.how,
        null_median=float(np.median(null)),
        null_max=float(null.max()),
        independent=windows.independent,
    )
