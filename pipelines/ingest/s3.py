"""The S3 source: land the new objects under a prefix, remembered by key and ETag.

Objects are JSON Lines, CSV or Parquet (``.gz`` for JSON Lines and CSV), read with the files
source's row rules as a stream (:func:`pipelines.ingest.formats.read_stream`): each object is
downloaded to a local temporary file a block at a time (hashing it), read back in batches of records
(lines of JSON Lines and CSV, gzip decompressed as it goes, rows of Parquet) and written batch by
batch into its ``part-NNNNN.parquet`` of the run's landing partition (and ``part-NNNNN.jsonl`` in
quarantine), so the memory a run takes does not grow with the objects' sizes; ``PARALLEL_OBJECTS``
objects (up to four, one a core) are read at once. The landing manifest (written last) lists every
object with its ETag, size, sha256 and counts; only then does ``state/source=s3/objects.json``
remember the objects, so a crash before it makes the next run read them again (validation drops the
event keys already validated). A changed object (same key, new ETag) is read again. The endpoint and
credentials come from the environment or the ``flywheel_s3`` Connection, never from params.

Progress (:mod:`pipelines.common.progress`): the listing says how many objects it found and in how long,
and the reading counts objects as they land, with the megabytes read and the rows landed: a bar in a
terminal, a log line at most every 30 s and one at the end under Airflow.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.common.config import Params, S3SourceConfig
from pipelines.common.io import table_bytes
from pipelines.common.lake import MANIFEST, Lake
from pipelines.common.progress import Progress
from pipelines.common.settings import Settings
from pipelines.ingest import rows as records
from pipelines.ingest.endpoints import S3Endpoint, SourceUnavailable
from pipelines.ingest.formats import UnreadableFile, hidden, read_stream, relative_path, suffixes
from pipelines.ingest.landing import IngestError, check_counts, jsonl_bytes, part_name, write_manifest

log = logging.getLogger(__name__)

SOURCE = "s3"
PARALLEL_OBJECTS = min(4, os.cpu_count() or 1)  # objects read at once (each holds one batch in memory)
DOWNLOAD_BLOCK = 8 << 20  # bytes read from S3 at a time
BATCH_ROWS = 20_000  # records of an object decoded at a time


def run(
    params: Params, settings: Settings, run_id: str, endpoint: S3Endpoint | None = None
) -> dict[str, Any]:
    """Land the objects under ``ingest.s3.url`` that are new or changed since the last run.

    Returns:
        A JSON-able summary: objects_new, objects_skipped, consumed, landed, quarantined, reasons,
        landing_partition, quarantine_partition.

    Raises:
        SourceUnavailable: the S3 API cannot be reached or refuses the listing (the message names it).
    """
    cfg = params.ingest.s3
    endpoint = endpoint or S3Endpoint.from_env()
    lake = Lake(settings.lake_root(params))
    landing = lake.partition("landing", run_id, source=SOURCE)
    quarantine = lake.partition("quarantine", run_id, source=SOURCE)
    state = read_state(lake)
    done = lake.read_json(f"{landing}/{MANIFEST}")
    if done:  # a retry of a complete run: remember its objects, rewrite nothing (it may be validated)
        write_state(lake, state, done["objects"], run_id)
        return {**_summary(done, landing, quarantine), "resumed": True}
    fs = endpoint.filesystem()
    listed = list_objects(fs, cfg, endpoint)
    new = [(key, info) for key, info in listed if state["objects"].get(key, {}).get("etag") != _etag(info)]
    if not new:
        return _nothing_new(run_id, cfg, len(listed))
    lake.reset_partition(landing)
    lake.reset_partition(quarantine)
    try:
        manifest = _land(fs, new, lake, landing, quarantine, params, run_id, endpoint)
    except BaseException:
        if not lake.fs.exists(f"{landing}/{MANIFEST}"):  # a complete partition stays; a partial one goes
            lake.reset_partition(landing)
            lake.reset_partition(quarantine)
        raise
    write_state(lake, state, manifest["objects"], run_id)
    log.info(
        "s3 ingest %s: %s objects, %s consumed, %s landed, %s quarantined",
        run_id,
        len(new),
        *manifest["counts"].values(),
    )
    return {
        **_summary(manifest, landing, quarantine),
        "objects_skipped": len(listed) - len(new),
        "resumed": False,
    }


def list_objects(fs: Any, cfg: S3SourceConfig, endpoint: S3Endpoint) -> list[tuple[str, dict[str, Any]]]:
    """``(s3://bucket/key, info)`` of the objects under the prefix with a configured format, sorted."""
    root = cfg.url.removeprefix("s3://").rstrip("/")
    bucket = root.split("/", 1)[0]
    keep = suffixes(cfg.formats)
    with Progress(f"s3 objects listed under {cfg.url}", unit="object") as shown:
        try:
            found = fs.find(root, detail=True)  # one paginated listing of the whole prefix
        except FileNotFoundError:
            raise IngestError(
                f"bucket {bucket!r} of ingest.s3.url {cfg.url} does not exist on "
                f"{endpoint.describe()}; expected an existing bucket"
            ) from None
        except Exception as exc:
            raise _unavailable(endpoint, f"listing {cfg.url}", exc) from None
        out = []
        for path, info in found.items():
            wanted = path.lower().endswith(keep) and not hidden(relative_path(path, root))
            if info.get("type", "file") == "file" and wanted:
                out.append((f"s3://{path}", info))
        shown.update(len(out))
    return sorted(out)


def _unavailable(endpoint: S3Endpoint, doing: str, exc: BaseException) -> SourceUnavailable:
    return SourceUnavailable(
        f"{endpoint.describe()}: {doing} failed ({type(exc).__name__}: {exc}); expected a "
        "reachable S3 API: start one with `flywheel services up s3`, or point the "
        "flywheel_s3 Connection or AWS_ENDPOINT_URL at yours"
    )


def _etag(info: dict[str, Any]) -> str | None:
    tag = info.get("ETag") or info.get("etag")
    return str(tag).strip('"') if tag else None


def _land(
    fs: Any,
    new: list[tuple[str, dict[str, Any]]],
    lake: Lake,
    landing: str,
    quarantine: str,
    params: Params,
    run_id: str,
    endpoint: S3Endpoint,
) -> dict[str, Any]:
    """Stream the objects, several at once, into their parts; then the manifests (quarantine, landing)."""
    now = pd.Timestamp.now(tz="UTC")
    target = _Target(fs, lake, landing, quarantine, params, now, endpoint)
    landed = _land_objects(target, new)
    objects = [entry for entry, _ in landed]
    parts = [o["part"] for o in objects if o["part"]]
    quarantine_parts = [part_name(i, ".jsonl") for i, o in enumerate(objects) if o["quarantined"]]
    reasons: Counter[str] = Counter()
    for _, counted in landed:
        reasons.update(counted)
    counts = {k: sum(o[k] for o in objects) for k in ("consumed", "landed", "quarantined")}
    check_counts(counts["consumed"], counts["landed"], counts["quarantined"])
    if not parts:  # everything was quarantined: an empty part keeps the partition readable
        parts = [part_name(0, ".parquet")]
        lake.write_bytes(
            f"{landing}/{parts[0]}", table_bytes(records.arrow_schema(params.schema).empty_table())
        )
    manifest = {
        "run_id": run_id,
        "source": SOURCE,
        "url": params.ingest.s3.url,
        "endpoint": endpoint.endpoint_url,
        "schema": params.schema.name,
        "objects": objects,
        "counts": counts,
        "rows": counts["landed"],
        "reasons": dict(sorted(reasons.items())),
        "parts": parts,
        "quarantine_parts": quarantine_parts,
        "written_at": datetime.now(UTC).isoformat(),
    }
    if counts["quarantined"]:
        write_manifest(lake, quarantine, {**manifest, "data": quarantine_parts})
    write_manifest(lake, landing, {**manifest, "data": parts})
    return manifest


@dataclass(frozen=True)
class _Target:
    """Where and how the objects of one run land."""

    fs: Any
    lake: Lake
    landing: str
    quarantine: str
    params: Params
    now: pd.Timestamp
    endpoint: S3Endpoint


def _land_objects(
    target: _Target, new: list[tuple[str, dict[str, Any]]]
) -> list[tuple[dict[str, Any], Counter[str]]]:
    """Land the objects ``PARALLEL_OBJECTS`` at a time, in their order, counting each one as it lands."""
    landed: dict[int, tuple[dict[str, Any], Counter[str]]] = {}
    with (
        Progress("s3 objects read", len(new), "object") as shown,
        ThreadPoolExecutor(PARALLEL_OBJECTS, thread_name_prefix="flywheel-s3") as pool,
    ):
        futures = {pool.submit(_land_object, target, i, item): i for i, item in enumerate(new)}
        read_bytes = rows = 0
        for future in as_completed(futures):
            landed[futures[future]] = entry, _ = future.result()
            read_bytes, rows = read_bytes + entry["size"], rows + entry["landed"]
            shown.update(MB=round(read_bytes / 1e6, 2), rows=rows)
    return [landed[i] for i in range(len(new))]


def _land_object(
    target: _Target, index: int, item: tuple[str, dict[str, Any]]
) -> tuple[dict[str, Any], Counter[str]]:
    """Download one object to a local file (hashing it), read it in batches into a local Parquet part and
    quarantine file, then copy those into the lake: the memory it takes is a batch's, whatever its size."""
    url, info = item
    etag = _etag(info)
    entry: dict[str, Any] = {"key": url, "etag": etag, "landed": 0, "quarantined": 0, "part": None}
    reasons: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix="flywheel-s3-") as tmp:
        local, part, bad = (os.path.join(tmp, n) for n in ("object", "part.parquet", "quarantine.jsonl"))
        entry["sha256"], entry["size"] = _download(target, url, local)
        try:
            _read_object(target, url, etag, local, part, bad, entry, reasons)
        except UnreadableFile as exc:  # the whole object is one quarantined record, as read_file has it
            with open(local, "rb") as fh:
                head = fh.read(target.params.ingest.max_record_bytes)
            whole = records.quarantine_entry(url, head, str(exc))
            with open(bad, "wb") as out:
                out.write(jsonl_bytes([{**whole, "object": url, "etag": etag}]))
            entry.update(landed=0, quarantined=1)
            reasons = Counter([records.reason_kind(whole["reason"])])
        entry["consumed"] = entry["landed"] + entry["quarantined"]
        if entry["landed"]:
            entry["part"] = part_name(index, ".parquet")
            target.lake.write_file(f"{target.landing}/{entry['part']}", part)
        if entry["quarantined"]:
            target.lake.write_file(f"{target.quarantine}/{part_name(index, '.jsonl')}", bad)
    keys = ("key", "etag", "size", "sha256", "consumed", "landed", "quarantined", "part")
    return {k: entry[k] for k in keys}, reasons


def _download(target: _Target, url: str, local: str) -> tuple[str, int]:
    """Copy an object to a local file a block at a time; its sha256 and size."""
    digest, size = hashlib.sha256(), 0
    try:
        with target.fs.open(url, "rb", block_size=DOWNLOAD_BLOCK) as remote, open(local, "wb") as out:
            while block := remote.read(DOWNLOAD_BLOCK):
                digest.update(block)
                size += len(block)
                out.write(block)
    except Exception as exc:
        raise _unavailable(target.endpoint, f"reading {url}", exc) from None
    return digest.hexdigest(), size


def _read_object(
    target: _Target,
    url: str,
    etag: str | None,
    local: str,
    part: str,
    bad: str,
    entry: dict[str, Any],
    reasons: Counter[str],
) -> None:
    """Typed rows a batch at a time into the Parquet part, refused records into the quarantine file."""
    schema = records.arrow_schema(target.params.schema)
    writer: pq.ParquetWriter | None = None
    try:
        with open(local, "rb") as stream, open(bad, "wb") as out:
            cfg = target.params.ingest
            for typed, refused in read_stream(stream, url, target.params.schema, cfg, target.now, BATCH_ROWS):
                if len(typed):
                    writer = writer or pq.ParquetWriter(part, schema, compression="zstd")
                    writer.write_table(pa.Table.from_pandas(typed, schema=schema, preserve_index=False))
                    entry["landed"] += len(typed)
                if refused:
                    out.write(jsonl_bytes({**e, "object": url, "etag": etag} for e in refused))
                    entry["quarantined"] += len(refused)
                    reasons.update(records.reason_kind(e["reason"]) for e in refused)
    finally:
        if writer is not None:
            writer.close()


def _summary(manifest: dict[str, Any], landing: str, quarantine: str) -> dict[str, Any]:
    counts = manifest["counts"]
    return {
        "run_id": manifest["run_id"],
        "source": SOURCE,
        "url": manifest["url"],
        "endpoint": manifest["endpoint"],
        "objects_new": len(manifest["objects"]),
        **counts,
        "reasons": manifest["reasons"],
        "landing_partition": landing,
        "quarantine_partition": quarantine if counts["quarantined"] else None,
    }


def _nothing_new(run_id: str, cfg: S3SourceConfig, listed: int) -> dict[str, Any]:
    log.info("s3 ingest %s: no new or changed objects under %s", run_id, cfg.url)
    return {
        "run_id": run_id,
        "source": SOURCE,
        "url": cfg.url,
        "objects_new": 0,
        "objects_skipped": listed,
        "consumed": 0,
        "landed": 0,
        "quarantined": 0,
        "reasons": {},
        "landing_partition": None,
        "quarantine_partition": None,
        "resumed": False,
        "message": f"no new or changed objects under {cfg.url}; nothing written",
    }


# -- the state manifest -------------------------------------------------------------------------


def state_path(lake: Lake) -> str:
    """Where the S3 source remembers the objects it has landed."""
    return lake.path("state", f"source={SOURCE}", "objects.json")


def read_state(lake: Lake) -> dict[str, Any]:
    """``{"objects": {s3://bucket/key: {etag, size, sha256, run_id, ingested_at}}}``."""
    state = lake.read_json(state_path(lake), default=None) or {}
    return {"source": SOURCE, "objects": dict(state.get("objects", {}))}


def write_state(lake: Lake, state: dict[str, Any], objects: list[dict[str, Any]], run_id: str) -> None:
    """Remember the objects of a complete run (after its manifest is written)."""
    now = datetime.now(UTC).isoformat()
    for o in objects:
        state["objects"][o["key"]] = {
            "etag": o["etag"],
            "size": o["size"],
            "sha256": o["sha256"],
            "run_id": run_id,
            "ingested_at": now,
        }
    text = json.dumps({**state, "updated_at": now}, indent=2, sort_keys=True) + "\n"
    lake.write_bytes(state_path(lake), text.encode())
