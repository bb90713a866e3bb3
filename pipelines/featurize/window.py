"""The window of validated events: which days, which rows, each key once, in a stable order.

The snapshot stage materialises this window for training and the drift check compares its own
windows with it, so both read the validated tier the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pandas as pd

from pipelines.common.lake import MANIFEST, Lake

if TYPE_CHECKING:
    from pipelines.common.config import Schema


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
