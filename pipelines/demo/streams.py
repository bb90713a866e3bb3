"""Labelled event streams for backtests: stationary, or with an abrupt concept change at a known time.

A backtest reads files, never this module: ``flywheel produce --concept-change-at DATE`` writes them.
Before the change the fraud rule is the generator's original one, from the change on it is the drifted
one in full (``concept_drift=1``); the inputs keep one distribution throughout, so only the concept
moves. The two rules are about as learnable (the true probabilities rank fraud with ROC-AUC ≈ 0.91
each; see ``tests/unit/demo/test_streams.py``). Rows are spread over time in proportion to each part's
length, and the same arguments always give the same files.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pipelines.demo.generator import default_window, produce


def produce_stream(
    out: str,
    rows: int,
    seed: int = 0,
    start: datetime | None = None,
    end: datetime | None = None,
    files: int = 1,
    fmt: str = "jsonl",
    batch: str = "demo",
    change_at: datetime | None = None,
    storage_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write a stationary stream, or one whose concept changes abruptly at ``change_at``.

    Without ``change_at`` this is :func:`~pipelines.demo.generator.produce`. With it, the rows of
    ``[start, change_at)`` follow the original rule (files ``<batch>-before-<k>``) and those of
    ``[change_at, end)`` the drifted one (files ``<batch>-after-<k>``), each part with ``files`` files.

    Raises:
        ValueError: ``change_at`` is not strictly inside ``[start, end)``.
    """
    start, end = default_window(start, end)
    if change_at is None:
        return produce(out, rows, seed, start, end, files, fmt, batch, storage_options=storage_options)
    change_at = change_at.astimezone(UTC) if change_at.tzinfo else change_at.replace(tzinfo=UTC)
    if not start < change_at < end:
        raise ValueError(
            f"change_at {change_at.isoformat()}: expected a time strictly between start {start.isoformat()} "
            f"and end {end.isoformat()}"
        )
    before = round(rows * (change_at - start) / (end - start))
    parts = [
        produce(
            out,
            before,
            seed,
            start,
            change_at,
            files,
            fmt,
            f"{batch}-before",
            storage_options=storage_options,
        ),
        produce(
            out,
            rows - before,
            seed + 1,
            change_at,
            end,
            files,
            fmt,
            f"{batch}-after",
            concept_drift=1.0,
            storage_options=storage_options,
        ),
    ]
    return {
        "rows": rows,
        "files": 2 * files,
        "format": fmt,
        "seed": seed,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "change_at": change_at.isoformat(),
        "paths": [p for part in parts for p in part["paths"]],
        "before": {k: parts[0][k] for k in ("rows", "fraud_rate")},
        "after": {k: parts[1][k] for k in ("rows", "fraud_rate")},
    }
