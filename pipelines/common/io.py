"""Deterministic bytes and careful writes for files in the DVC workspace (local paths).

DVC hashes what stages write, so the same data must give the same bytes, and a file whose
bytes did not change is left alone. The lake's tiers have their own writer (:class:`Lake`).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

_CHUNK = 1 << 20


def table_bytes(table: pa.Table, dictionary: Sequence[str] | None = None) -> bytes:
    """Parquet bytes of a table (zstd, like every tier of the lake).

    ``dictionary``: the columns worth dictionary-encoding (few distinct values, such as categories);
    None: every column, Arrow's default. Naming them spares the writer building a dictionary for
    columns of unique values (keys, times) only to drop it: a landed part of demo events writes in
    two thirds of the time, and is smaller.
    """
    buffer = io.BytesIO()
    use_dictionary: bool | list[str] = True if dictionary is None else list(dictionary)
    pq.write_table(table, buffer, compression="zstd", use_dictionary=use_dictionary)
    return buffer.getvalue()


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    """Deterministic Parquet bytes of a frame (no index, fixed codec)."""
    return table_bytes(pa.Table.from_pandas(frame, preserve_index=False))


def _nan_to_none(data: Any) -> Any:
    if isinstance(data, float) and not np.isfinite(data):
        return None
    if isinstance(data, dict):
        return {k: _nan_to_none(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_nan_to_none(v) for v in data]
    return data


def json_bytes(data: Any) -> bytes:
    """Deterministic, human-readable JSON bytes; NaN and infinities become ``null`` (valid JSON)."""
    return (json.dumps(_nan_to_none(data), indent=2, allow_nan=False) + "\n").encode()


def write_if_changed(path: Path, data: bytes) -> bool:
    """Replace ``path`` atomically, and only when its bytes differ; return whether it changed."""
    if path.exists() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return True


def write_json(path: Path, data: Any) -> None:
    """Write a JSON report (metrics, plot points) with :func:`json_bytes`."""
    write_if_changed(path, json_bytes(data))


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, read in chunks."""
    digest = hashlib.new(algorithm)
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
