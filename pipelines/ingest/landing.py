"""The landing contracts every source keeps: every record landed or quarantined, parts, the manifest last.

A run consumes records and accounts for each one: ``consumed == landed + quarantined``
(:func:`check_counts`), or nothing is written and :class:`IngestError` says why.

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
from typing import TYPE_CHECKING, Any

from pipelines.common.errors import FlywheelError

if TYPE_CHECKING:  # not at import: endpoints and the Kafka clients import this without pandas and pyarrow
    from pipelines.common.lake import Lake


class IngestError(FlywheelError):
    """The source cannot be read as configured, or a run would break the ingestion contract."""


def check_counts(consumed: int, landed: int, quarantined: int) -> None:
    """Refuse to write a run where a record would be neither landed nor quarantined."""
    if consumed != landed + quarantined:
        raise IngestError(
            f"consumed {consumed} records but landed {landed} + quarantined {quarantined}; "
            "expected every record to be landed or quarantined"
        )


def part_name(index: int, suffix: str) -> str:
    """``part-00012.parquet`` for chunk 12."""
    return f"part-{index:05d}{suffix}"


def jsonl_bytes(entries: Iterable[dict[str, Any]]) -> bytes:
    """Quarantine entries, one JSON object per line."""
    return "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries).encode()


def write_manifest(lake: Lake, partition: str, manifest: dict[str, Any]) -> None:
    """The partition's manifest, durably, last: from now on readers see the partition."""
    from pipelines.common.lake import MANIFEST

    lake.write_json(f"{partition}/{MANIFEST}", manifest)


def b64(data: bytes | None) -> str | None:
    """Exact bytes of a quarantined record, for replay."""
    return None if data is None else base64.b64encode(data).decode("ascii")
