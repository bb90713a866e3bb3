"""Snapshot: materialise the training window of validated events into the DVC workspace.

The snapshot is what DVC hashes: the same validated events in the same window
give a byte-identical ``data/snapshot/events.parquet``, so ``dvc repro`` skips
featurize and train when nothing new arrived.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from pipelines.common.config import Params, Schema
from pipelines.common.errors import FlywheelError
from pipelines.common.io import parquet_bytes, write_if_changed
from pipelines.common.lake import MANIFEST, Lake
from pipelines.common.settings import Settings
from pipelines.workspace.paths import EVENTS, WINDOW


class SnapshotError(FlywheelError):
    """The training window cannot be built."""


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


def select_window(frames: list[pd.DataFrame], schema: Schema, window: Window) -> pd.DataFrame:
    """Events inside the window, each key once (the earliest validated copy), in a stable order."""
    columns = [schema.key, schema.event_time, *schema.feature_names, schema.target]
    if not frames:
        return pd.DataFrame(columns=columns)
    events = pd.concat([f[columns] for f in frames], ignore_index=True)
    times = events[schema.event_time]
    inside = (times >= pd.Timestamp(window.start)) & (times < pd.Timestamp(window.end))
    events = events[inside].drop_duplicates(subset=schema.key, keep="first")
    return events.sort_values([schema.event_time, schema.key], kind="stable").reset_index(drop=True)


def read_validated(lake: Lake) -> tuple[list[pd.DataFrame], list[str]]:
    """Every complete validated partition, in the order they were written."""
    partitions = lake.complete_partitions("validated")
    written = {p: (lake.read_json(f"{p}/{MANIFEST}") or {}).get("written_at", "") for p in partitions}
    ordered = sorted(partitions, key=lambda p: (written[p], p))
    frames = [lake.read_frame(f"{p}/part-00000.parquet") for p in ordered]
    return frames, ordered


def run(
    params: Params,
    settings: Settings,
    workspace: Path,
    as_of: datetime | None = None,
    window_days: int | None = None,
) -> dict:
    """Write the window of validated events ending on ``as_of`` (default: now) into the workspace."""
    days = window_days or params.snapshot.window_days
    window = Window.ending_on(as_of or datetime.now(UTC), days)
    frames, partitions = read_validated(Lake(settings.lake_root(params)))
    events = select_window(frames, params.schema, window)
    if events.empty:
        raise SnapshotError(
            f"no validated events in the window [{window.start.isoformat()}, {window.end.isoformat()}) "
            f"({len(partitions)} validated partitions); expected at least one: ingest and validate first, "
            f"or widen snapshot.window_days (now {days})"
        )
    changed = write_if_changed(workspace / EVENTS, parquet_bytes(events))
    meta = {
        "window_start": window.start.isoformat(),
        "window_end": window.end.isoformat(),
        "rows": len(events),
        "positives": int(events[params.schema.target].sum()),
        "partitions": partitions,
    }
    write_if_changed(workspace / WINDOW, (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())
    return {**meta, "path": str(workspace / EVENTS), "changed": changed}
