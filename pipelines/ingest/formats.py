"""The file formats the files and S3 sources read: JSON Lines, JSON arrays, CSV and Parquet (``.gz`` too).

:func:`read_file` turns one file's bytes into typed rows and quarantined records, each
with its origin (``name:line``) and a reason; a file that cannot be decoded at all (a
corrupt gzip or Parquet file) is quarantined as one record. The row rules are
:mod:`.rows`'s, the same for every source. :func:`suffixes` and :func:`hidden` say
which names of a folder or prefix are read.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, TextIO, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.common.config import IngestConfig, Schema
from pipelines.common.errors import FlywheelError
from pipelines.ingest import rows as records

SUFFIXES = {"jsonl": (".jsonl", ".json", ".ndjson"), "csv": (".csv",), "parquet": (".parquet",)}
GZIP_FORMATS = ("jsonl", "csv")


@dataclass
class FileResult:
    """What one source file gave: typed rows, quarantined records, and its identity."""

    path: str
    sha256: str
    size: int
    landed: pd.DataFrame
    quarantined: list[dict[str, Any]] = field(default_factory=list)

    @property
    def consumed(self) -> int:
        """Every record of the file: landed or quarantined."""
        return len(self.landed) + len(self.quarantined)

    def entry(self) -> dict[str, Any]:
        """The file's line in the landing manifest."""
        return {
            "path": self.path,
            "sha256": self.sha256,
            "size": self.size,
            "consumed": self.consumed,
            "landed": len(self.landed),
            "quarantined": len(self.quarantined),
        }


def suffixes(formats: tuple[str, ...]) -> tuple[str, ...]:
    """File name endings read for the configured formats (``.gz`` for JSON Lines and CSV)."""
    plain = tuple(s for f in formats for s in SUFFIXES[f])
    zipped = tuple(s + ".gz" for f in formats if f in GZIP_FORMATS for s in SUFFIXES[f])
    return plain + zipped


def relative_path(path: str, root: str) -> str:
    """``path`` relative to the folder or prefix ``root`` (its name when it lies elsewhere)."""
    root = root.rstrip("/")
    return path[len(root) + 1 :] if path.startswith(root + "/") else path.rsplit("/", 1)[-1]


def hidden(relative: str) -> bool:
    """Whether a relative path has a part starting with ``.`` or ``_`` (temporary files, markers)."""
    return any(part.startswith((".", "_")) for part in relative.split("/"))


# -- reading one file ---------------------------------------------------------------------


def read_file(
    data: bytes, path: str, name: str, schema: Schema, cfg: IngestConfig, now: pd.Timestamp, sha256: str
) -> FileResult:
    """Decode and type one file's records; ``name`` prefixes each record's origin."""
    result = FileResult(path=path, sha256=sha256, size=len(data), landed=_empty(schema, cfg, now))
    try:
        raw, result.quarantined = decode_file(data, name, schema, cfg.max_record_bytes)
    except UnreadableFile as exc:
        result.quarantined = [records.quarantine_entry(name, data[: cfg.max_record_bytes], str(exc))]
        return result
    result.landed, result.quarantined = _typed(raw, result.quarantined, schema, cfg, now)
    return result


def _typed(
    raw: pd.DataFrame, refused: list[dict[str, Any]], schema: Schema, cfg: IngestConfig, now: pd.Timestamp
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """The typed rows of a raw frame (with ``_origin``), and every refused record in line order."""
    typed, reasons = records.coerce(raw, schema, cfg, now)
    typed[records.ORIGIN] = raw[records.ORIGIN].to_numpy()[~raw.index.isin(reasons.index)]
    quarantined = refused + [
        records.quarantine_entry(raw.at[i, records.ORIGIN], _raw_text(raw, i), reason)
        for i, reason in reasons.items()
    ]
    quarantined.sort(key=_origin_order)
    return typed, quarantined


# -- reading one file in batches ----------------------------------------------------------

BATCH_ROWS = 20_000  # records decoded at a time from a streamed file


def read_stream(
    stream: BinaryIO,
    name: str,
    schema: Schema,
    cfg: IngestConfig,
    now: pd.Timestamp,
    batch_rows: int = BATCH_ROWS,
) -> Iterator[tuple[pd.DataFrame, list[dict[str, Any]]]]:
    """Typed rows and quarantined records of a file, ``batch_rows`` records at a time, in line order.

    The memory it takes is a batch's, whatever the file's size: JSON Lines and CSV are read a batch
    of lines at a time (``.gz`` decompressed as it goes), Parquet a batch of rows at a time (the
    stream must be seekable). A ``.json`` file holding one JSON array is read whole. The records and
    reasons are :func:`read_file`'s. Raises :class:`UnreadableFile` when the file cannot be decoded
    (a corrupt gzip or Parquet file), possibly after some batches: the caller drops them and
    quarantines the file as one record, as :func:`read_file` does.
    """
    lowered = name.lower()
    zipped = lowered.endswith(".gz")
    if zipped:
        stream, lowered = cast(BinaryIO, gzip.GzipFile(fileobj=stream, mode="rb")), lowered[:-3]
    try:
        for raw, refused in _raw_batches(stream, lowered, name, schema, cfg.max_record_bytes, batch_rows):
            yield _typed(raw, refused, schema, cfg, now)
    except (OSError, EOFError, zlib.error) as exc:
        if not zipped or isinstance(exc, UnreadableFile):
            raise
        raise UnreadableFile(f"unreadable gzip file: {exc}") from None


def _raw_batches(
    stream: BinaryIO, lowered: str, name: str, schema: Schema, max_record_bytes: int, batch_rows: int
) -> Iterator[tuple[pd.DataFrame, list[dict[str, Any]]]]:
    names = [f.name for f in records.fields(schema)]
    if lowered.endswith(".parquet"):
        yield from _parquet_batches(stream, name, names, batch_rows)
    elif lowered.endswith(".csv"):
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
        yield from _csv_batches(text, name, names, max_record_bytes, batch_rows)
    elif lowered.endswith(".json"):  # maybe one JSON array document: read whole
        data = stream.read()
        if data.lstrip()[:1] == b"[":
            yield _decode_json_document(data, name, names, max_record_bytes)
        else:
            decoded = records.read_json_lines(data, name, max_record_bytes)
            yield decoded.frame(names), decoded.quarantined
    else:
        yield from _json_lines_batches(stream, name, schema, max_record_bytes, batch_rows)


def _json_lines_batches(
    stream: BinaryIO, name: str, schema: Schema, max_record_bytes: int, batch_rows: int
) -> Iterator[tuple[pd.DataFrame, list[dict[str, Any]]]]:
    """JSON Lines a batch of lines at a time: Arrow's one-call decoding when every line is a plain
    object (:func:`records.frame_from_json_values`), else the line-by-line rules."""
    names = [f.name for f in records.fields(schema)]
    first = 1
    while True:
        lines = list(itertools.islice(stream, batch_rows))
        if not lines and first > 1:
            return
        values: list[bytes | None] = [line.removesuffix(b"\n") for line in lines]
        fast = records.frame_from_json_values(values, schema, max_record_bytes) if values else None
        if fast is not None:
            fast[records.ORIGIN] = np.array(
                [f"{name}:{n}" for n in range(first, first + len(values))], dtype=object
            )
            fast[records.RAW] = np.fromiter(values, dtype=object, count=len(values))
            yield fast, []
        else:
            decoded = records.read_json_lines(b"".join(lines), name, max_record_bytes, first_line=first)
            yield decoded.frame(names), decoded.quarantined
        if not lines:
            return
        first += len(lines)


def _parquet_batches(
    stream: BinaryIO, name: str, names: list[str], batch_rows: int
) -> Iterator[tuple[pd.DataFrame, list[dict[str, Any]]]]:
    try:
        parquet = pq.ParquetFile(stream)
        present = [n for n in names if n in parquet.schema_arrow.names]
        batches = parquet.iter_batches(batch_size=batch_rows, columns=present)
        first = 1
        for batch in itertools.chain(batches, [None] if parquet.metadata.num_rows == 0 else []):
            table = (
                pa.Table.from_batches([batch]) if batch is not None else parquet.schema_arrow.empty_table()
            )
            yield _parquet_frame(table, name, names, first), []
            first += table.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise UnreadableFile(f"unreadable Parquet file: {exc}") from None


class UnreadableFile(FlywheelError, ValueError):
    """A whole file cannot be decoded (corrupt gzip or Parquet); it is quarantined as one record."""


def decode_file(
    data: bytes, name: str, schema: Schema, max_record_bytes: int
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """A raw frame (with ``_origin``, maybe ``_raw``) and the records refused before typing."""
    lowered = name.lower()
    if lowered.endswith(".gz"):
        data, lowered = _gunzip(data), lowered[:-3]
    names = [f.name for f in records.fields(schema)]
    if lowered.endswith(".parquet"):
        return _decode_parquet(data, name, names), []
    if lowered.endswith(".csv"):
        return decode_csv(data, name, names, max_record_bytes)
    if lowered.endswith(".json") and data.lstrip()[:1] == b"[":
        return _decode_json_document(data, name, names, max_record_bytes)
    decoded = records.read_json_lines(data, name, max_record_bytes)
    return decoded.frame(names), decoded.quarantined


def _gunzip(data: bytes) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise UnreadableFile(f"unreadable gzip file: {exc}") from None


def _decode_parquet(data: bytes, name: str, names: list[str]) -> pd.DataFrame:
    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as exc:
        raise UnreadableFile(f"unreadable Parquet file: {exc}") from None
    return _parquet_frame(table, name, names, 1)


def _parquet_frame(table: pa.Table, name: str, names: list[str], first: int) -> pd.DataFrame:
    """Rows ``first``, ``first + 1``, ... of a Parquet file as a raw frame."""
    # Typed columns stay typed (a null or NaN there is missing); text columns are checked value by value.
    # An integer column with nulls stays integers (and None), not floats: a quarantined row's raw text
    # then shows the file's values, whichever batch of the file the row was read in.
    columns = {
        n: table.column(n).to_pandas(integer_object_nulls=True) for n in names if n in table.column_names
    }
    frame = pd.DataFrame(columns, index=pd.RangeIndex(table.num_rows))
    frame[records.ORIGIN] = [f"{name}:{i}" for i in range(first, first + table.num_rows)]
    return frame


def _decode_json_document(
    data: bytes, name: str, names: list[str], max_record_bytes: int
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """A ``.json`` file holding one array of objects; anything else is read as JSON Lines."""
    try:
        items = json.loads(data)
    except ValueError:
        items = None
    if not isinstance(items, list):
        decoded = records.read_json_lines(data, name, max_record_bytes)
        return decoded.frame(names), decoded.quarantined
    objects, bad = [], []
    for number, item in enumerate(items, start=1):
        text = json.dumps(item)
        obj, reason = records.decode_json_record(text.encode(), max_record_bytes)
        if reason is not None:
            bad.append(records.quarantine_entry(f"{name}:{number}", text, reason))
            continue
        assert obj is not None  # no reason: an object
        objects.append({**obj, records.ORIGIN: f"{name}:{number}"})
    return records.frame_from_objects(objects, [*names, records.ORIGIN, records.RAW]), bad


def decode_csv(
    data: bytes, name: str, names: list[str], max_record_bytes: int
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Rows of a CSV file with a header, as strings ('' is missing).

    A row whose field count differs from the header's (a truncated or broken
    line), a row that is not UTF-8, an oversized row or a line the CSV reader
    rejects is quarantined with its 1-based line number. Blank lines are skipped.
    (The stdlib reader is used rather than pandas: it gives each row's line
    number and raw text, and never pads a short row with missing values.)
    """
    text = io.StringIO(data.decode("utf-8", "surrogateescape").removeprefix("\ufeff"), newline="")
    return next(_csv_batches(text, name, names, max_record_bytes, None))


def _csv_batches(
    lines: TextIO, name: str, names: list[str], max_record_bytes: int, batch_rows: int | None
) -> Iterator[tuple[pd.DataFrame, list[dict[str, Any]]]]:
    """:func:`decode_csv` a batch of ``batch_rows`` records at a time (None: all at once)."""
    header: list[str] | None = None
    rows: list[list[str]] = []
    origins: list[str] = []
    raws: list[str] = []
    bad: list[dict[str, Any]] = []
    for number, row, raw, error in _csv_records(lines):
        if header is None and error is None:
            header = row
            continue
        reason = error or _csv_row_problem(row, raw, len(header or []), max_record_bytes)
        if reason:
            bad.append(
                records.quarantine_entry(f"{name}:{number}", raw.encode("utf-8", "surrogateescape"), reason)
            )
        else:
            rows.append(row)
            origins.append(f"{name}:{number}")
            raws.append(raw)
        if batch_rows is not None and len(rows) + len(bad) >= batch_rows:
            yield _csv_frame(header or [], rows, origins, raws, names), bad
            rows, origins, raws, bad = [], [], [], []
    yield _csv_frame(header or [], rows, origins, raws, names), bad


def _csv_records(lines: TextIO) -> Iterator[tuple[int, list[str], str, str | None]]:
    """``(first line number, fields, raw text, reader error)`` for each non-blank CSV record."""
    buffer: list[str] = []
    reader = csv.reader(_remembering(lines, buffer))
    while True:
        buffer.clear()
        try:
            row, error = next(reader), None
        except StopIteration:
            return
        except csv.Error as exc:
            row, error = [], f"malformed CSV line: {exc}"
        if error is None and (not row or (len(row) == 1 and not row[0].strip())):
            continue
        yield reader.line_num - len(buffer) + 1, row, "".join(buffer).rstrip("\r\n"), error


def _remembering(lines: TextIO, buffer: list[str]) -> Iterator[str]:
    for line in lines:
        buffer.append(line)
        yield line


def _csv_row_problem(row: list[str], raw_text: str, width: int, max_record_bytes: int) -> str | None:
    if len(row) != width:
        return f"malformed CSV line: expected {width} fields, got {len(row)}"
    if not raw_text.isascii():
        try:
            size = len(raw_text.encode("utf-8"))
        except UnicodeEncodeError as exc:
            return f"not UTF-8: invalid byte 0x{ord(raw_text[exc.start]) - 0xDC00:02x}"
    else:
        size = len(raw_text)
    if size > max_record_bytes:
        return f"oversized record: {size} bytes > max_record_bytes {max_record_bytes}"
    return None


def _csv_frame(
    header: list[str], rows: list[list[str]], origins: list[str], raws: list[str], names: list[str]
) -> pd.DataFrame:
    position = {h: i for i, h in enumerate(header)}
    columns = {n: pd.Series([r[position[n]] for r in rows], dtype=object) for n in names if n in position}
    frame = pd.DataFrame(columns, index=pd.RangeIndex(len(rows)))
    frame[records.ORIGIN] = pd.Series(origins, dtype=object)
    frame[records.RAW] = pd.Series(raws, dtype=object)
    return frame


def _raw_text(raw: pd.DataFrame, index: Any) -> str:
    """The raw text of one row: its line when the source kept it, else its fields as JSON."""
    if records.RAW in raw.columns and isinstance(raw.at[index, records.RAW], str | bytes):
        return records.raw_text(raw.at[index, records.RAW])
    row = {k: v for k, v in raw.loc[index].items() if not str(k).startswith("_")}
    return json.dumps(row, default=_json_value)


def _json_value(value: Any) -> Any:
    """A NumPy scalar as the Python number it holds (``63``, not ``"63"``); anything else as text."""
    return value.item() if isinstance(value, np.generic) else str(value)


def _origin_order(entry: dict[str, Any]) -> tuple[int, str]:
    tail = entry["origin"].rsplit(":", 1)[-1]
    return (int(tail) if tail.isdigit() else 0, entry["origin"])


def _empty(schema: Schema, cfg: IngestConfig, now: pd.Timestamp) -> pd.DataFrame:
    typed, _ = records.coerce(pd.DataFrame(), schema, cfg, now)
    return typed.assign(**{records.ORIGIN: pd.Series(dtype=object)})
