"""Ingest: land new source files, quarantine the records that cannot be typed.

The files source reads a folder or fsspec URL of JSON Lines, CSV and Parquet
files (``.gz`` for JSON Lines and CSV). A state manifest in the lake remembers
every file by path and content hash, so a run reads only new or changed files.

What a run writes, in this order, so that a crash leaves nothing half-visible:

1. ``landing/source=files/run=<run>/part-00000.parquet``: the typed rows plus ``_origin``;
2. ``quarantine/source=files/run=<run>/quarantine.jsonl``: one ``{origin, raw, reason}`` per bad record;
3. each partition's ``_manifest.json`` (files with hashes and counts), last in its partition;
4. ``state/source=files/ingested.json``, only after both partitions are complete.

A retry with the same run id resets and rewrites its own partitions, and every
record consumed is either landed or quarantined: ``consumed == landed + quarantined``.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import logging
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.common.config import IngestConfig, Params, Schema
from pipelines.common.errors import FlywheelError
from pipelines.common.lake import MANIFEST, Lake
from pipelines.common.settings import Settings
from pipelines.ingest import rows as records
from pipelines.ingest.landing import jsonl_bytes

log = logging.getLogger(__name__)

SOURCE = "files"
LANDING_FILE = "part-00000.parquet"
QUARANTINE_FILE = "quarantine.jsonl"
SUFFIXES = {"jsonl": (".jsonl", ".json", ".ndjson"), "csv": (".csv",), "parquet": (".parquet",)}
GZIP_FORMATS = ("jsonl", "csv")


class IngestError(FlywheelError):
    """The source cannot be read as configured, or a run would break the ingestion contract."""


@dataclass
class FileResult:
    """What one source file gave: typed rows, quarantined records, and its identity."""

    path: str
    sha256: str
    size: int
    landed: pd.DataFrame
    quarantined: list[dict] = field(default_factory=list)

    @property
    def consumed(self) -> int:
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


# -- the edge -----------------------------------------------------------------------------


def run(params: Params, settings: Settings, run_id: str, path: str | None = None) -> dict:
    """Land the new and changed files of the files source as one run.

    Args:
        params: the loaded ``params.yaml`` (schema and ``ingest`` section).
        settings: where the lake lives.
        run_id: the run's id; a retry with the same id rewrites its own partitions.
        path: the source folder or URL (default ``ingest.files.path``, relative to the project).

    Returns:
        A JSON-able summary: run_id, source, path, files_new, files_skipped, consumed,
        landed, quarantined, reasons, landing_partition, quarantine_partition.

    Raises:
        IngestError: the source folder does not exist or a count does not add up.
    """
    source = resolve_source(path, params.ingest, settings)
    fs, root = fsspec.core.url_to_fs(source)
    listed = list_files(fs, root, params.ingest.files.formats, source)
    lake = Lake(settings.lake_root(params))
    state = read_state(lake)
    results, skipped = read_new_files(fs, root, listed, state, run_id, params)
    if not results:
        return {**_nothing_new(run_id, source), "files_new": 0, "files_skipped": skipped}
    summary = write_run(lake, run_id, source, results, params.schema)
    write_state(lake, state, results, {_display(fs, p): info for p, info in listed}, run_id)
    return {**summary, "files_new": len(results), "files_skipped": skipped}


def read_new_files(
    fs: fsspec.AbstractFileSystem,
    root: str,
    listed: list[tuple[str, dict]],
    state: dict,
    run_id: str,
    params: Params,
) -> tuple[list[FileResult], int]:
    """Read the listed files that are new or changed since the state; return them and the skipped count.

    Files this same run recorded count as new, so a retry reads them again. A re-run of a completed
    run (a cleared date) reads exactly the files it recorded and nothing that arrived since, so it
    rewrites the same partition; newer files are left to the next run.
    """
    now = pd.Timestamp.now(tz="UTC")
    results, skipped = [], 0
    replay = {path for path, entry in state["files"].items() if entry.get("run_id") == run_id}
    for file_path, info in listed:
        shown = _display(fs, file_path)
        if replay and shown not in replay:
            skipped += 1
            continue
        seen = state["files"].get(shown)
        seen = seen if seen and seen.get("run_id") != run_id else None
        if seen and _unchanged_by_info(seen, info):
            skipped += 1
            continue
        data = fs.cat_file(file_path)
        sha = hashlib.sha256(data).hexdigest()
        if seen and seen.get("sha256") == sha:
            skipped += 1
            continue
        results.append(
            read_file(data, shown, _relative(file_path, root), params.schema, params.ingest, now, sha)
        )
    return results, skipped


def resolve_source(path: str | None, cfg: IngestConfig, settings: Settings) -> str:
    """The source URL: ``path`` as given, else ``ingest.files.path`` relative to the project folder."""
    if path is not None:
        return path if "://" in path else str(Path(path).resolve())
    configured = cfg.files.path
    if "://" in configured or Path(configured).is_absolute():
        return configured
    return str(settings.project / configured)


def list_files(
    fs: fsspec.AbstractFileSystem, root: str, formats: tuple[str, ...], source: str
) -> list[tuple[str, dict]]:
    """Files under ``root`` with a configured format, in sorted order, with their fsspec info.

    Names starting with ``.`` or ``_`` (temporary files, markers) are left alone.
    """
    if not fs.isdir(root):
        wanted = ", ".join(suffixes(formats))
        raise IngestError(
            f"source folder {source} does not exist or is not a folder; expected a folder or fsspec URL "
            f"holding {wanted} files (set ingest.files.path in params.yaml or pass --path)"
        )
    found = fs.find(root, detail=True)
    keep = suffixes(formats)
    return sorted(
        (p, info)
        for p, info in found.items()
        if info.get("type", "file") == "file" and p.lower().endswith(keep) and not _hidden(_relative(p, root))
    )


def suffixes(formats: tuple[str, ...]) -> tuple[str, ...]:
    """File name endings read for the configured formats (``.gz`` for JSON Lines and CSV)."""
    plain = tuple(s for f in formats for s in SUFFIXES[f])
    zipped = tuple(s + ".gz" for f in formats if f in GZIP_FORMATS for s in SUFFIXES[f])
    return plain + zipped


def _relative(path: str, root: str) -> str:
    root = root.rstrip("/")
    return path[len(root) + 1 :] if path.startswith(root + "/") else path.rsplit("/", 1)[-1]


def _hidden(relative: str) -> bool:
    return any(part.startswith((".", "_")) for part in relative.split("/"))


def _display(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """A local path as is, anything else as a URL with its protocol."""
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return path if protocol in ("file", "local") else fs.unstrip_protocol(path)


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
    typed, reasons = records.coerce(raw, schema, cfg, now)
    typed[records.ORIGIN] = raw[records.ORIGIN].to_numpy()[~raw.index.isin(reasons.index)]
    result.landed = typed
    result.quarantined += [
        records.quarantine_entry(raw.at[i, records.ORIGIN], _raw_text(raw, i), reason)
        for i, reason in reasons.items()
    ]
    result.quarantined.sort(key=_origin_order)
    return result


class UnreadableFile(FlywheelError, ValueError):
    """A whole file cannot be decoded (corrupt gzip or Parquet); it is quarantined as one record."""


def decode_file(
    data: bytes, name: str, schema: Schema, max_record_bytes: int
) -> tuple[pd.DataFrame, list[dict]]:
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
    # Typed columns stay typed (a null or NaN there is missing); text columns are checked value by value.
    columns = {n: table.column(n).to_pandas() for n in names if n in table.column_names}
    frame = pd.DataFrame(columns, index=pd.RangeIndex(table.num_rows))
    frame[records.ORIGIN] = [f"{name}:{i}" for i in range(1, table.num_rows + 1)]
    return frame


def _decode_json_document(
    data: bytes, name: str, names: list[str], max_record_bytes: int
) -> tuple[pd.DataFrame, list[dict]]:
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
        if reason is None:
            objects.append({**obj, records.ORIGIN: f"{name}:{number}"})
        else:
            bad.append(records.quarantine_entry(f"{name}:{number}", text, reason))
    return records.frame_from_objects(objects, [*names, records.ORIGIN, records.RAW]), bad


def decode_csv(
    data: bytes, name: str, names: list[str], max_record_bytes: int
) -> tuple[pd.DataFrame, list[dict]]:
    """Rows of a CSV file with a header, as strings ('' is missing).

    A row whose field count differs from the header's (a truncated or broken
    line), a row that is not UTF-8, an oversized row or a line the CSV reader
    rejects is quarantined with its 1-based line number. Blank lines are skipped.
    (The stdlib reader is used rather than pandas: it gives each row's line
    number and raw text, and never pads a short row with missing values.)
    """
    text = data.decode("utf-8", "surrogateescape").removeprefix("\ufeff")
    header: list[str] | None = None
    rows, origins, raws, bad = [], [], [], []
    for number, row, raw, error in _csv_records(text):
        if header is None and error is None:
            header = row
            continue
        reason = error or _csv_row_problem(row, raw, len(header or []), max_record_bytes)
        if reason:
            bad.append(
                records.quarantine_entry(f"{name}:{number}", raw.encode("utf-8", "surrogateescape"), reason)
            )
            continue
        rows.append(row)
        origins.append(f"{name}:{number}")
        raws.append(raw)
    return _csv_frame(header or [], rows, origins, raws, names), bad


def _csv_records(text: str) -> Iterator[tuple[int, list[str], str, str | None]]:
    """``(first line number, fields, raw text, reader error)`` for each non-blank CSV record."""
    buffer: list[str] = []
    reader = csv.reader(_remembering(io.StringIO(text, newline=""), buffer))
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


def _remembering(lines: io.StringIO, buffer: list[str]) -> Iterator[str]:
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
    return json.dumps(row, default=str)


def _origin_order(entry: dict) -> tuple[int, str]:
    tail = entry["origin"].rsplit(":", 1)[-1]
    return (int(tail) if tail.isdigit() else 0, entry["origin"])


def _empty(schema: Schema, cfg: IngestConfig, now: pd.Timestamp) -> pd.DataFrame:
    typed, _ = records.coerce(pd.DataFrame(), schema, cfg, now)
    return typed.assign(**{records.ORIGIN: pd.Series(dtype=object)})


# -- writing a run ------------------------------------------------------------------------


def write_run(lake: Lake, run_id: str, source: str, results: list[FileResult], schema: Schema) -> dict:
    """Write the landing and quarantine partitions of a run (manifests last) and summarise it."""
    landed = pd.concat([r.landed for r in results], ignore_index=True)
    quarantined = [e for r in results for e in r.quarantined]
    consumed = sum(r.consumed for r in results)
    check_counts(consumed, len(landed), len(quarantined))
    reasons = dict(sorted(Counter(records.reason_kind(e["reason"]) for e in quarantined).items()))
    landing = lake.partition("landing", run_id, source=SOURCE)
    quarantine = lake.partition("quarantine", run_id, source=SOURCE)
    lake.reset_partition(landing)
    lake.reset_partition(quarantine)
    table = pa.Table.from_pandas(landed, schema=records.arrow_schema(schema), preserve_index=False)
    lake.write_table(f"{landing}/{LANDING_FILE}", table)
    if quarantined:
        lake.write_bytes(f"{quarantine}/{QUARANTINE_FILE}", jsonl_bytes(quarantined))
    counts = {"consumed": consumed, "landed": len(landed), "quarantined": len(quarantined)}
    base = {
        "run_id": run_id,
        "source": SOURCE,
        "path": source,
        "schema": schema.name,
        "files": [r.entry() for r in results],
        "counts": counts,
        "reasons": reasons,
        "written_at": datetime.now(UTC).isoformat(),
    }
    times = landed[schema.event_time]
    lake.write_json(
        f"{landing}/{MANIFEST}",
        {
            **base,
            "data": LANDING_FILE,
            "rows": len(landed),
            "min_event_time": times.min().isoformat() if len(landed) else None,
            "max_event_time": times.max().isoformat() if len(landed) else None,
        },
    )
    if quarantined:
        lake.write_json(
            f"{quarantine}/{MANIFEST}", {**base, "data": QUARANTINE_FILE, "rows": len(quarantined)}
        )
    log.info(
        "ingest %s: %s consumed, %s landed, %s quarantined", run_id, consumed, len(landed), len(quarantined)
    )
    return {
        "run_id": run_id,
        "source": SOURCE,
        "path": source,
        **counts,
        "reasons": reasons,
        "landing_partition": landing,
        "quarantine_partition": quarantine if quarantined else None,
    }


def check_counts(consumed: int, landed: int, quarantined: int) -> None:
    """Refuse to write a run where a record would be neither landed nor quarantined."""
    if consumed != landed + quarantined:
        raise IngestError(
            f"consumed {consumed} records but landed {landed} + quarantined {quarantined}; "
            "expected every record to be landed or quarantined"
        )


def _nothing_new(run_id: str, source: str) -> dict:
    log.info("ingest %s: no new or changed files under %s", run_id, source)
    return {
        "run_id": run_id,
        "source": SOURCE,
        "path": source,
        "consumed": 0,
        "landed": 0,
        "quarantined": 0,
        "reasons": {},
        "landing_partition": None,
        "quarantine_partition": None,
        "message": f"no new or changed files under {source}; nothing written",
    }


# -- the state manifest -------------------------------------------------------------------


def state_path(lake: Lake) -> str:
    """Where the files source remembers what it has ingested."""
    return lake.path("state", f"source={SOURCE}", "ingested.json")


def read_state(lake: Lake) -> dict:
    """The state manifest: ``{"files": {path: {sha256, size, modified, run_id, ingested_at}}}``."""
    state = lake.read_json(state_path(lake), default=None) or {}
    return {"source": SOURCE, "files": dict(state.get("files", {}))}


def write_state(
    lake: Lake, state: dict, results: list[FileResult], info: dict[str, dict], run_id: str
) -> None:
    """Record the files of a completed run (after its partitions are written)."""
    now = datetime.now(UTC).isoformat()
    for r in results:
        state["files"][r.path] = {
            "sha256": r.sha256,
            "size": r.size,
            "modified": _modified(info.get(r.path, {})),
            "run_id": run_id,
            "ingested_at": now,
        }
    lake.write_json(state_path(lake), {**state, "updated_at": now})


def _modified(info: dict) -> str | None:
    """A cheap change marker from a listing: mtime (local), ETag or LastModified (object stores)."""
    for key in ("mtime", "ETag", "etag", "LastModified", "last_modified", "updated"):
        if info.get(key) is not None:
            return str(info[key])
    return None


def _unchanged_by_info(seen: dict, info: dict) -> bool:
    """True when size and change marker both match the remembered ones (no need to read the file)."""
    modified = _modified(info)
    return modified is not None and seen.get("modified") == modified and seen.get("size") == info.get("size")
