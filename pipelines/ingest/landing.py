"""Landing a source run as numbered parts that survive a crash, the manifest last.

A run's landing partition holds ``part-00000.parquet``, ``part-00001.parquet``,
... (one per chunk, so memory stays bounded however large the backlog), and its
quarantine partition ``part-00000.jsonl``, ... Every file is written with the lake's
durable write (:meth:`Lake.write_bytes`). The partition's ``_manifest.json`` is written last
and makes it visible; only after that may a source remember what it consumed
(commit Kafka offsets, record S3 keys).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable

from pipelines.common.lake import MANIFEST, Lake


def part_name(index: int, suffix: str) -> str:
    """``part-00012.parquet`` for chunk 12."""
    return f"part-{index:05d}{suffix}"


def jsonl_bytes(entries: Iterable[dict]) -> bytes:
    """Quarantine entries, one JSON object per line."""
    return "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries).encode()


def write_manifest(lake: Lake, partition: str, manifest: dict) -> None:
    """The partition's manifest, durably, last: from now on readers see the partition."""
    lake.write_json(f"{partition}/{MANIFEST}", manifest)


def b64(data: bytes | None) -> str | None:
    """Exact bytes of a quarantined record, for replay."""
    return None if data is None else base64.b64encode(data).decode("ascii")
