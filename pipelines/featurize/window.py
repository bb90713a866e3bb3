"""The window of validated events: which days, which rows, each key once, in a stable order.

The snapshot stage materialises this window for training and the drift check compares its own
windows with it, so both read the validated tier the same way. :func:`training_window` is the training
window policy (``snapshot.window``: sliding or expanding, capped by ``max_days`` and ``max_rows``); the
backtest replays it step by step, so both train on exactly the same rows for the same logical date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pandas as pd

from pipelines.common.lake import MANIFEST, Lake

if TYPE_CHECKING:
    from pipelines.common.config import Schema, SnapshotConfig


@dataclass(frozen=True)
class Window:
    """A half-open time window ``[start, end)`` in UTC."""

    start: datetime
    end: datetime

    @classmethod
    def ending_on(cls, day: datetime, days: int) -> Window:
        """The ``days`` whole UTC days up to and including ``day``'s date."""
        day = day.astimezone(UTC) if day.tzinfo else day.replace(tzinfo=UTC)
        end = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
        return cls(start=end - timedelta(days=days), end=end)


def training_window(as_of: datetime, cfg: SnapshotConfig, earliest: datetime | None = None) -> Window:
    """The days a model trained on ``as_of`` learns from, by ``snapshot.window``.

    ``sliding``: the ``window_days`` whole UTC days ending on ``as_of``. ``expanding``: every day from
    ``earliest`` (the first validated event; ``as_of``'s day when there is none) up to ``as_of``, at most
    ``max_days`` of them. Rows are capped separately (:func:`newest_rows`).
    """
    if cfg.window == "sliding":
        return Window.ending_on(as_of, cfg.window_days)
    end = Window.ending_on(as_of, 1).end
    first = Window.ending_on(earliest, 1).start if earliest is not None else end - timedelta(days=1)
    if cfg.max_days is not None:
        first = max(first, end - timedelta(days=cfg.max_days))
    return Window(start=min(first, end - timedelta(days=1)), end=end)


def newest_rows(events: pd.DataFrame, max_rows: int | None) -> pd.DataFrame:
    """At most ``max_rows`` of time-ordered ``events``, the newest kept (all of them for None)."""
    if max_rows is None or len(events) <= max_rows:
        return events
    return events.iloc[len(events) - max_rows :].reset_index(drop=True)


def earliest_event(frames: list[pd.DataFrame], schema: Schema) -> datetime | None:
    """The event time of the oldest row of ``frames`` (None when they hold no row)."""
    firsts = [f[schema.event_time].min() for f in frames if len(f)]
    return pd.Timestamp(min(firsts)).to_pydatetime() if firsts else None


def select_training_rows(
    frames: list[pd.DataFrame], schema: Schema, as_of: datetime, cfg: SnapshotConfig
) -> tuple[pd.DataFrame, Window]:
    """The training rows for ``as_of`` by the window policy, and the window they were selected from."""
    window = training_window(as_of, cfg, earliest_event(frames, schema))
    return newest_rows(select_window(frames, schema, window), cfg.max_rows), window


def raw_columns(schema: Schema) -> list[str]:
    """The columns of a raw event: key, event time, the features, the target."""
    return [schema.key, schema.event_time, *schema.feature_names, schema.target]


def select_window(frames: list[pd.DataFrame], schema: Schema, window: Window) -> pd.DataFrame:
    """Events inside the window, each key once (the earliest validated copy), in a stable order."""
    columns = raw_columns(schema)
    if not frames:
        return pd.DataFrame(columns=columns)
    events = pd.concat([f[columns] for f in frames], ignore_index=True)
    times = events[schema.event_time]
    inside = (times >= pd.Timestamp(window.start)) & (times < pd.Timestamp(window.end))
    events = events[inside].drop_duplicates(subset=schema.key, keep="first")
    return events.sort_values([schema.event_time, schema.key], kind="stable").reset_index(drop=True)


def read_validated(lake: Lake) -> tuple[list[pd.DataFrame], list[str]]:
    """Every complete validated partition, in the order they were written, and their paths."""
    partitions = lake.complete_partitions("validated")
    written = {p: (lake.read_json(f"{p}/{MANIFEST}") or {}).get("written_at", "") for p in partitions}
    ordered = sorted(partitions, key=lambda p: (written[p], p))
    frames = [lake.read_frame(f"{p}/part-00000.parquet") for p in ordered]
    return frames, ordered
