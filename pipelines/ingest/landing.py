"""Landing a source run as numbered parts that survive a crash, the manifest last.

A run's landing partition holds ``part-00000.parquet``, ``part-00001.parquet``,
... (one per chunk, so memory stays bounded however large the backlog), and its
quarantine partition ``part-00000.jsonl``, ... Every file is written whole under
a temporary name, flushed to disk (``fsync``) and renamed; on an object store a
single PUT is already atomic. The partition's ``_manifest.json`` is written last
and makes it visible; only after that may a source remember what it consumed
(commit Kafka offsets, record S3 keys).
"""

from __future__ import annotations

import base64
import io
import json
import os
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from pipelines.common.lake import MANIFEST, Lake


def part_name(index: int, suffix: str) -> str:
    """``part-00012.parquet`` for chunk 12."""
    return f"part-{index:05d}{suffix}"


def durable_write(lake: Lake, path: str, data: bytes) -> None:
    """Write a whole file so that it is either absent or complete and on disk, even after a crash."""
    fs = lake.fs
    if not isinstance(fs, LocalFileSystem):
        fs.pipe_file(path, data)  # one PUT: atomic on object stores
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


def _fsync_folder(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def parquet_bytes(table: pa.Table) -> bytes:
    """A landed part as Parquet (zstd, like every tier of the lake)."""
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def jsonl_bytes(entries: Iterable[dict]) -> bytes:
    """Quarantine entries, one JSON object per line."""
    return "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries).encode()


def write_manifest(lake: Lake, partition: str, manifest: dict) -> None:
    """The partition's manifest, durably, last: from now on readers see the partition."""
    text = json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n"
    durable_write(lake, f"{partition}/{MANIFEST}", text.encode())


def b64(data: bytes | None) -> str | None:
    """Exact bytes of a quarantined record, for replay."""
    return None if data is None else base64.b64encode(data).decode("ascii")
