"""Snapshot: materialise the training window of validated events into the DVC workspace.

The snapshot is what DVC hashes: the same validated events in the same window
give a byte-identical ``data/snapshot/events.parquet``, so ``dvc repro`` skips
featurize and train when nothing new arrived.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.common.config import Params
from pipelines.common.errors import FlywheelError
from pipelines.common.io import parquet_bytes, write_if_changed
from pipelines.common.lake import Lake
from pipelines.common.settings import Settings
from pipelines.featurize.window import read_validated, select_training_rows
from pipelines.workspace.paths import EVENTS, WINDOW


class SnapshotError(FlywheelError):
    """The training window cannot be built."""


def run(
    params: Params,
    settings: Settings,
    workspace: Path,
    as_of: datetime | None = None,
    window_days: int | None = None,
) -> dict[str, Any]:
    """Write the training window of validated events ending on ``as_of`` (default: now) into the workspace.

    The window follows ``snapshot.window`` (sliding ``window_days``, or expanding up to ``max_days``),
    capped at ``snapshot.max_rows`` rows, newest kept; ``window_days`` asks for a sliding window that long.

    Raises:
        SnapshotError: the window holds no validated event.
    """
    cfg = params.snapshot
    if window_days is not None:
        cfg = cfg.model_copy(update={"window": "sliding", "window_days": window_days})
    frames, partitions = read_validated(Lake(settings.lake_root(params)))
    events, window = select_training_rows(frames, params.schema, as_of or datetime.now(UTC), cfg)
    if events.empty:
        sliding = cfg.window == "sliding"
        widen = f"widen snapshot.window_days (now {cfg.window_days})" if sliding else "move the as_of date"
        raise SnapshotError(
            f"no validated events in the window [{window.start.isoformat()}, {window.end.isoformat()}) "
            f"({cfg.window}; {len(partitions)} validated partitions); expected at least one: ingest and "
            f"validate first, or {widen}"
        )
    changed = write_if_changed(workspace / EVENTS, parquet_bytes(events))
    meta = {
        "window": cfg.window,
        "window_start": window.start.isoformat(),
        "window_end": window.end.isoformat(),
        "rows": len(events),
        "positives": int(events[params.schema.target].sum()) if params.schema.task == "binary" else None,
        "partitions": partitions,
    }
    write_if_changed(workspace / WINDOW, (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())
    return {**meta, "path": str(workspace / EVENTS), "changed": changed}
