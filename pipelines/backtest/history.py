"""The labelled history a backtest replays: read once through ingest's row rules, then one step at a time.

:func:`stage_history` reads a file, folder or fsspec URL of JSON Lines, CSV or Parquet files in the
schema of ``params.yaml`` with the same decoding and row rules as the ingest stage (a row ingest would
quarantine is left out here too, and counted), one file at a time, and writes its rows into scratch
Parquet buckets of one clock step's length. :meth:`History.read` then returns the events of one time
range, reading only the buckets that overlap it, so memory holds a file or a step, never the history.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fsspec
import pandas as pd

from pipelines.backtest.errors import BacktestError
from pipelines.common.config import Params, Schema
from pipelines.featurize import Window, select_window
from pipelines.ingest import formats, list_files

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class History:
    """The staged events: Parquet buckets of ``width`` under ``root``, and what reading them found."""

    root: Path
    schema: Schema
    width: timedelta
    files: list[str] = field(default_factory=list)
    rows: int = 0
    quarantined: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    first_event: datetime | None = None
    last_event: datetime | None = None
    _buckets: set[int] = field(default_factory=set)

    def bucket(self, moment: datetime) -> int:
        """The bucket holding ``moment`` (buckets start at the Unix epoch, ``width`` apart)."""
        return math.floor((moment - EPOCH) / self.width)

    def add(self, typed: pd.DataFrame, tag: str) -> None:
        """Write one file's typed rows into the buckets of their event times."""
        if typed.empty:
            return
        times = typed[self.schema.event_time]
        first, last = times.min().to_pydatetime(), times.max().to_pydatetime()
        self.first_event = min(first, self.first_event or first)
        self.last_event = max(last, self.last_event or last)
        index = ((times - pd.Timestamp(EPOCH)) // pd.Timedelta(self.width)).astype("int64")
        for bucket, rows in typed.groupby(index.to_numpy(), sort=True):
            folder = self.root / f"bucket={int(bucket):+08d}"
            folder.mkdir(parents=True, exist_ok=True)
            rows.reset_index(drop=True).to_parquet(folder / f"{tag}.parquet", index=False)
            self._buckets.add(int(bucket))
        self.rows += len(typed)

    def read(self, start: datetime, end: datetime) -> pd.DataFrame:
        """The events of ``[start, end)``, each key once, ordered by event time and key."""
        wanted = range(self.bucket(start), self.bucket(end - timedelta(microseconds=1)) + 1)
        frames = [
            pd.read_parquet(path)
            for bucket in wanted
            if bucket in self._buckets
            for path in sorted((self.root / f"bucket={bucket:+08d}").glob("*.parquet"))
        ]
        return select_window(frames, self.schema, Window(start, end))

    def describe(self) -> dict[str, Any]:
        """What was read: files, rows, quarantined rows by reason, the first and last event times."""
        return {
            "files": self.files,
            "rows": self.rows,
            "quarantined": self.quarantined,
            "quarantine_reasons": dict(self.reasons.most_common(10)),
            "first_event": self.first_event.isoformat() if self.first_event else None,
            "last_event": self.last_event.isoformat() if self.last_event else None,
        }


def source_files(source: str, params: Params) -> tuple[fsspec.AbstractFileSystem, list[str]]:
    """The files of ``source``: the file itself, or the readable files of a folder or prefix.

    Raises:
        BacktestError: nothing readable is there.
    """
    fs, root = fsspec.core.url_to_fs(source)
    if fs.isfile(root):
        return fs, [root]
    if not fs.exists(root):
        raise BacktestError(
            f"--data {source}: no such file or folder; expected labelled events in the schema "
            f"{params.schema.name!r} (JSON Lines, CSV or Parquet)"
        )
    listed = [path for path, _ in list_files(fs, root, params.ingest.files.formats, source)]
    if not listed:
        wanted = ", ".join(formats.suffixes(params.ingest.files.formats))
        raise BacktestError(f"--data {source} holds no {wanted} file; expected labelled events to replay")
    return fs, listed


def stage_history(source: str, params: Params, width: timedelta, scratch: Path) -> History:
    """Read every file of ``source`` once, typed by ingest's rules, into buckets under ``scratch``.

    Raises:
        BacktestError: the source is missing or holds no event that passes the row rules.
    """
    fs, paths = source_files(source, params)
    history = History(scratch, params.schema, width)
    now = pd.Timestamp.now(tz="UTC")
    for number, path in enumerate(paths):
        data = fs.cat_file(path)
        name = path.rsplit("/", 1)[-1]
        digest = hashlib.sha256(data).hexdigest()
        result = formats.read_file(data, path, name, params.schema, params.ingest, now, digest)
        history.files.append(path)
        history.quarantined += len(result.quarantined)
        history.reasons.update(entry["reason"].split(": ", 1)[0] for entry in result.quarantined)
        history.add(result.landed, f"file-{number:05d}")
    if history.rows == 0:
        raise BacktestError(
            f"--data {source}: none of {history.quarantined} records passed the row rules of the schema "
            f"{params.schema.name!r}; expected labelled events (reasons: {dict(history.reasons)})"
        )
    return history
