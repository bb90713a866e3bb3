"""The files source: land new and changed files, quarantine the records that cannot be typed.

The files source reads a folder or fsspec URL of JSON Lines, CSV and Parquet
files (``.gz`` for JSON Lines and CSV), decoded by :mod:`.formats`. A state manifest in the lake remembers
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

import hashlib
import logging
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fsspec
import pandas as pd
import pyarrow as pa

from pipelines.common.config import IngestConfig, Params, Schema
from pipelines.common.lake import MANIFEST, Lake
from pipelines.common.settings import Settings
from pipelines.ingest import rows as records
from pipelines.ingest.formats import FileResult, hidden, read_file, relative_path, suffixes
from pipelines.ingest.landing import IngestError, check_counts, jsonl_bytes

log = logging.getLogger(__name__)

SOURCE = "files"
LANDING_FILE = "part-00000.parquet"
QUARANTINE_FILE = "quarantine.jsonl"


# -- the edge -----------------------------------------------------------------------------


def run(params: Params, settings: Settings, run_id: str, path: str | None = None) -> dict[str, Any]:
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
    listed: list[tuple[str, dict[str, Any]]],
    state: dict[str, Any],
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
            read_file(data, shown, relative_path(file_path, root), params.schema, params.ingest, now, sha)
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
) -> list[tuple[str, dict[str, Any]]]:
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
        if info.get("type", "file") == "file"
        and p.lower().endswith(keep)
        and not hidden(relative_path(p, root))
    )


def _display(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """A local path as is, anything else as a URL with its protocol."""
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return path if protocol in ("file", "local") else fs.unstrip_protocol(path)


# -- writing a run ------------------------------------------------------------------------


def write_run(
    lake: Lake, run_id: str, source: str, results: list[FileResult], schema: Schema
) -> dict[str, Any]:
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


def _nothing_new(run_id: str, source: str) -> dict[str, Any]:
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


def read_state(lake: Lake) -> dict[str, Any]:
    """The state manifest: ``{"files": {path: {sha256, size, modified, run_id, ingested_at}}}``."""
    state = lake.read_json(state_path(lake), default=None) or {}
    return {"source": SOURCE, "files": dict(state.get("files", {}))}


def write_state(
    lake: Lake, state: dict[str, Any], results: list[FileResult], info: dict[str, dict[str, Any]], run_id: str
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


def _modified(info: dict[str, Any]) -> str | None:
    """A cheap change marker from a listing: mtime (local), ETag or LastModified (object stores)."""
    for key in ("mtime", "ETag", "etag", "LastModified", "last_modified", "updated"):
        if info.get(key) is not None:
            return str(info[key])
    return None


def _unchanged_by_info(seen: dict[str, Any], info: dict[str, Any]) -> bool:
    """True when size and change marker both match the remembered ones (no need to read the file)."""
    modified = _modified(info)
    return modified is not None and seen.get("modified") == modified and seen.get("size") == info.get("size")
