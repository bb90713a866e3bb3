"""The storage tiers: landing, quarantine, validated, rejected, reports, state.

A local folder by default; any fsspec URL (``s3://bucket/prefix``) works. A
partition becomes visible to readers only once its ``_manifest.json`` is
written, last; a partition with a manifest is never changed again except by a
retry of the run that wrote it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from typing import Any

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from pipelines.common.io import table_bytes

_COPY_BLOCK = 8 << 20  # bytes copied at a time by Lake.write_file

MANIFEST = "_manifest.json"
TIERS = ("landing", "quarantine", "validated", "rejected", "reports", "state", "predictions", "labels")
_RUN_ID = re.compile(r"^[A-Za-z0-9_.:+-]+$")


def safe_run_id(run_id: str) -> str:
    """A run id usable as a folder name (Airflow run ids carry ``:`` and ``+``)."""
    if not run_id or not _RUN_ID.match(run_id):
        raise ValueError(f"run id {run_id!r} must be non-empty and use letters, digits and _.:+- only")
    return re.sub(r"[:+]", "_", run_id)


def _fsync_folder(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Lake:
    """The tiers under one root folder or URL."""

    root: str

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        return fsspec.core.url_to_fs(self.root)[0]

    @property
    def base(self) -> str:
        path: str = fsspec.core.url_to_fs(self.root)[1]
        return path.rstrip("/")

    def path(self, *parts: str) -> str:
        return "/".join([self.base, *parts])

    def partition(self, tier: str, run_id: str, source: str | None = None) -> str:
        if tier not in TIERS:
            raise ValueError(f"unknown tier {tier!r}; expected one of {TIERS}")
        parts = [tier] + ([f"source={source}"] if source else []) + [f"run={safe_run_id(run_id)}"]
        return self.path(*parts)

    # -- small, careful I/O --------------------------------------------------------------

    def write_bytes(self, path: str, data: bytes) -> None:
        """Write a whole file so that it is either absent or complete and on disk, even after a crash.

        Locally: a temporary name, flushed to disk (``fsync``), renamed, and the folder synced. On an
        object store a single PUT is already atomic. This is the one durable write of the lake.
        """
        fs = self.fs
        if not isinstance(fs, LocalFileSystem):
            fs.pipe_file(path, data)
            return
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        tmp = f"{path}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_folder(folder)

    def write_file(self, path: str, local: str) -> None:
        """Copy the local file ``local`` to ``path`` with :meth:`write_bytes`' guarantees, a block at a time.

        The memory it takes does not grow with the file. On an object store the upload (multipart for a
        large file) becomes visible only once complete.
        """
        fs = self.fs
        if not isinstance(fs, LocalFileSystem):
            fs.put_file(local, path)
            return
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        tmp = f"{path}.tmp"
        with open(local, "rb") as source, open(tmp, "wb") as fh:
            shutil.copyfileobj(source, fh, _COPY_BLOCK)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_folder(folder)

    def write_json(self, path: str, obj: Any) -> None:
        self.write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())

    def read_json(self, path: str, default: Any = None) -> Any:
        fs = self.fs
        if not fs.exists(path):
            return default
        with fs.open(path, "rb") as fh:
            return json.loads(fh.read())

    def write_table(self, path: str, table: pa.Table) -> None:
        """A table as Parquet (zstd), written durably."""
        self.write_bytes(path, table_bytes(table))

    def read_frame(self, path: str) -> pd.DataFrame:
        with self.fs.open(path, "rb") as fh:
            return pq.read_table(fh).to_pandas()

    def part_files(self, partition: str, suffix: str = ".parquet") -> list[str]:
        """The data files ``part-00000<suffix>``, ``part-00001<suffix>``, ... of a partition, in order."""
        fs = self.fs
        if not fs.exists(partition):
            return []
        names = [p.rsplit("/", 1)[-1] for p in fs.ls(partition, detail=False)]
        return [
            f"{partition}/{n}"
            for n in sorted(n for n in names if n.startswith("part-") and n.endswith(suffix))
        ]

    def read_partition(self, partition: str, columns: list[str] | None = None) -> pd.DataFrame:
        """All Parquet parts of a partition as one frame (a source may land a large run in several parts)."""
        return self.read_partition_table(partition, columns).to_pandas()

    def read_partition_table(
        self, partition: str, columns: list[str] | None = None, *, missing_ok: bool = False
    ) -> pa.Table:
        """All Parquet parts of a partition as one Arrow table: for readers that convert only some
        columns to pandas, or none. ``columns``: only these are decoded; ``missing_ok``: a column a
        part lacks is left out rather than an error."""
        tables = []
        for path in self.part_files(partition):
            with self.fs.open(path, "rb") as fh:
                if columns is not None and missing_ok:
                    part = pq.ParquetFile(fh)
                    names = set(part.schema_arrow.names)
                    tables.append(part.read(columns=[c for c in columns if c in names]))
                else:
                    tables.append(pq.read_table(fh, columns=columns))
        if not tables:
            raise FileNotFoundError(f"partition {partition} has no part-*.parquet file")
        return pa.concat_tables(tables)

    def complete_partitions(self, tier: str, source: str | None = None) -> list[str]:
        """Partitions of a tier whose manifest is written, oldest run first by name."""
        fs = self.fs
        base = self.path(tier, f"source={source}") if source else self.path(tier)
        if not fs.exists(base):
            return []
        found = [p.rsplit("/", 1)[0] for p in fs.glob(f"{base}/**/{MANIFEST}")]
        return sorted(found)

    def reset_partition(self, path: str) -> None:
        """Remove a partition before a retried run rewrites it (idempotent)."""
        fs = self.fs
        if fs.exists(path):
            fs.rm(path, recursive=True)
