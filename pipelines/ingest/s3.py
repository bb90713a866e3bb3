"""The S3 source: land the new objects under a prefix, remembered by key and ETag.

Objects are JSON Lines, CSV or Parquet (``.gz`` for JSON Lines and CSV), read with the files
source's readers and row rules (:func:`pipelines.ingest.formats.read_file`), one object at a time: each
object becomes one ``part-NNNNN.parquet`` of the run's landing partition (and ``part-NNNNN.jsonl`` in
quarantine). The landing manifest (written last) lists every object with its ETag, size, sha256
and counts; only then does ``state/source=s3/objects.json`` remember the objects, so a crash before
it makes the next run read them again (validation drops the event keys already validated). A
changed object (same key, new ETag) is read again. The endpoint and credentials come from the
environment or the ``flywheel_s3`` Connection, never from params.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pyarrow as pa

from pipelines.common.config import Params, S3SourceConfig
from pipelines.common.io import table_bytes
from pipelines.common.lake import MANIFEST, Lake
from pipelines.common.settings import Settings
from pipelines.ingest import rows as records
from pipelines.ingest.endpoints import S3Endpoint, SourceUnavailable
from pipelines.ingest.formats import hidden, read_file, relative_path, suffixes
from pipelines.ingest.landing import IngestError, check_counts, jsonl_bytes, part_name, write_manifest

log = logging.getLogger(__name__)

SOURCE = "s3"


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
    try:
        found = fs.find(root, detail=True)
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
    """Read each object, write its parts, then the manifests (quarantine, then landing, last)."""
    now = pd.Timestamp.now(tz="UTC")
    objects: list[dict[str, Any]] = []
    parts: list[str] = []
    quarantine_parts: list[str] = []
    reasons: Counter[str] = Counter()
    for index, (url, info) in enumerate(new):
        try:
            data = fs.cat_file(url)
        except Exception as exc:
            raise _unavailable(endpoint, f"reading {url}", exc) from None
        sha = hashlib.sha256(data).hexdigest()
        result = read_file(data, url, url, params.schema, params.ingest, now, sha)
        entry: dict[str, Any] = {
            "key": url,
            "etag": _etag(info),
            "size": len(data),
            "sha256": sha,
            "consumed": result.consumed,
            "landed": len(result.landed),
            "quarantined": len(result.quarantined),
            "part": None,
        }
        if len(result.landed):
            entry["part"] = part_name(index, ".parquet")
            table = pa.Table.from_pandas(
                result.landed, schema=records.arrow_schema(params.schema), preserve_index=False
            )
            lake.write_bytes(f"{landing}/{entry['part']}", table_bytes(table))
            parts.append(entry["part"])
        if result.quarantined:
            name = part_name(index, ".jsonl")
            lake.write_bytes(
                f"{quarantine}/{name}",
                jsonl_bytes({**e, "object": url, "etag": entry["etag"]} for e in result.quarantined),
            )
            quarantine_parts.append(name)
        reasons.update(records.reason_kind(e["reason"]) for e in result.quarantined)
        objects.append(entry)
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
