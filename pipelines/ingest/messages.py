"""Kafka messages to typed rows: one JSON object per message value, or a quarantine entry saying why not.

The row rules are the files source's (:mod:`pipelines.ingest.rows`): the values of a
chunk are decoded in one pass, typed column by column with
:func:`records.coerce`, and every record that fails keeps its exact bytes
(``raw_base64``), a readable copy (``raw``), where it came from
(``topic``/``partition``/``offset``, ``origin`` = ``topic:partition:offset``) and
the reason.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.common.config import IngestConfig, Schema
from pipelines.ingest import rows as records
from pipelines.ingest.kafka_clients import Segment
from pipelines.ingest.landing import b64


@dataclass
class DecodedChunk:
    """The typed rows (with ``_origin``) and the quarantine entries of one chunk of segments."""

    frame: pd.DataFrame
    quarantined: list[dict[str, Any]] = field(default_factory=list)

    def reasons(self) -> Counter[str]:
        """How many records were quarantined for each kind of reason."""
        return Counter(records.reason_kind(e["reason"]) for e in self.quarantined)


def decode_segments(
    segments: list[Segment], schema: Schema, cfg: IngestConfig, now: pd.Timestamp
) -> DecodedChunk:
    """Decode and type the messages of a chunk; ``consumed == len(frame) + len(quarantined)``."""
    values = _values(segments)
    read = records.json_values_table(values, schema, cfg.max_record_bytes)
    return _decode(segments, values, read, schema, cfg, now)


def decode_batch(
    segments: list[Segment], schema: Schema, cfg: IngestConfig, now: pd.Timestamp, landing: pa.Schema
) -> tuple[pa.Table, list[dict[str, Any]]]:
    """The typed rows of a batch as Arrow (in ``landing``, the :func:`landing_schema`) and its quarantine
    entries. Arrow reads the values once: a batch whose every message passes the row rules is typed in
    Arrow alone (:func:`typed_segments`), any other by :func:`decode_segments`' per-record rules."""
    values = _values(segments)
    read = records.json_values_table(values, schema, cfg.max_record_bytes)
    table = typed_segments(segments, read, schema, cfg, now)
    if table is not None:
        return table.replace_schema_metadata(landing.metadata), []
    decoded = _decode(segments, values, read, schema, cfg, now)
    return pa.Table.from_pandas(
        decoded.frame, schema=landing, preserve_index=False, nthreads=1
    ), decoded.quarantined


def typed_segments(
    segments: list[Segment], read: pa.Table | None, schema: Schema, cfg: IngestConfig, now: pd.Timestamp
) -> pa.Table | None:
    """The typed rows of a chunk with ``_origin``, as Arrow, when every message passes the row rules.

    ``read``: the values as :func:`records.json_values_table` read them (None: it could not). The common
    case, typed without leaving Arrow (:func:`records.typed_json_table`): the rows
    :func:`decode_segments` gives for the same messages. None when any message needs the per-record
    rules; :func:`decode_segments` then decides and explains.
    """
    table = None if read is None else records.typed_json_table(read, schema, cfg, now)
    if table is None:
        return None
    return table.append_column(records.ORIGIN, _origin_array(segments))


def _values(segments: list[Segment]) -> list[bytes | None]:
    return [v for s in segments for v in s.values]


def _decode(
    segments: list[Segment],
    values: list[bytes | None],
    read: pa.Table | None,
    schema: Schema,
    cfg: IngestConfig,
    now: pd.Timestamp,
) -> DecodedChunk:
    """The per-record rules, on the values as Arrow read them (None: value by value)."""
    if read is not None:  # every value a plain JSON object: decoded in one call
        raw = records.json_table_frame(read)
        positions: list[int] | range = range(len(values))
        refused: list[tuple[int, str]] = []
    else:
        objects, positions, refused = records.decode_json_values(values, cfg.max_record_bytes)
        raw = records.frame_from_objects(objects, [f.name for f in records.fields(schema)])
    typed, reasons = records.coerce(raw, schema, cfg, now)
    where = np.asarray(positions, dtype=np.int64)
    origins = _origins(segments)
    typed[records.ORIGIN] = (
        origins[where[typed.index.to_numpy()]] if len(typed) else np.array([], dtype=object)
    )
    bad = sorted([*refused, *((int(where[i]), reason) for i, reason in reasons.items())])
    quarantined = [_entry(segments, values, origins, position, reason) for position, reason in bad]
    return DecodedChunk(typed.reset_index(drop=True), quarantined)


def landing_schema(schema: Schema, cfg: IngestConfig, now: pd.Timestamp) -> pa.Schema:
    """The Arrow schema of landed rows, with the pandas metadata a typed frame gives it.

    Readers restore pandas dtypes from that metadata (``Int64`` for an integer field), so a part
    holds it whichever way its batches were typed. It depends on the schema only, not on the rows.
    """
    empty = decode_segments([], schema, cfg, now).frame
    return pa.Table.from_pandas(empty, schema=records.arrow_schema(schema), preserve_index=False).schema


def _origin_array(segments: list[Segment]) -> pa.ChunkedArray:
    """``topic:partition:offset`` of every message, in order (joined by Arrow, a segment at a time)."""
    parts = [
        pc.binary_join_element_wise(
            f"{s.topic}:{s.partition}", pa.array(s.offsets, pa.int64()).cast(pa.string()), ":"
        )
        for s in segments
        if len(s)
    ]
    return pa.chunked_array(parts, pa.string())


def _origins(segments: list[Segment]) -> np.ndarray:
    """``topic:partition:offset`` of every message, in order, as an object array."""
    origins = _origin_array(segments)
    if not len(origins):
        return np.array([], dtype=object)
    return np.asarray(origins.to_numpy(zero_copy_only=False), dtype=object)


def _entry(
    segments: list[Segment], values: list[bytes | None], origins: np.ndarray, position: int, reason: str
) -> dict[str, Any]:
    topic, partition, offset, key = _locate(segments, position)
    value = values[position]
    return {
        "origin": origins[position],
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "key_base64": b64(key),
        "raw": records.raw_text(value or b""),
        "raw_base64": b64(value),
        "reason": reason,
    }


def _locate(segments: list[Segment], position: int) -> tuple[str, int, int, bytes | None]:
    for s in segments:
        if position < len(s):
            return s.topic, s.partition, s.offsets[position], s.keys[position]
        position -= len(s)
    raise IndexError(position)
