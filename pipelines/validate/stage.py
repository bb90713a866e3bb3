"""Validate: the gate between landed batches and training data, at the lake's edge.

Every complete landing partition that has neither a validated nor a rejected
partition yet is checked by the suite (:mod:`.suite`, run by :mod:`.gate`). A
batch that passes is copied to ``validated/``, each event key once; one that
fails gets a ``rejected/`` manifest that names the failed expectations with
examples, and never reaches training. Either way the GX result is kept as JSON
and as Data Docs HTML under ``reports/validation/``. Landing data is never modified.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from pipelines.common.config import Params, Schema, ValidateConfig
from pipelines.common.lake import MANIFEST, Lake
from pipelines.common.settings import Settings
from pipelines.validate.gate import ValidationOutcome, describe_failure, validate_frame
from pipelines.validate.suite import build_suite, load_extra_expectations

PART = "part-00000.parquet"


def run(params: Params, settings: Settings, source: str | None = None) -> dict[str, Any]:
    """Validate every landed partition that has no validated or rejected partition yet.

    Args:
        params: The loaded params (schema and ``validate`` section).
        settings: Where the lake and the params file are.
        source: Only partitions of this source (default: all).

    Returns:
        A JSON-able summary: overall verdict, one entry per partition, row counts.
    """
    lake = Lake(settings.lake_root(params))
    extra = load_extra_expectations(params.validation.extra_expectations, settings.params_path.parent)
    build_suite(params.schema, params.validation, extra)  # a bad extras file fails before any I/O
    known = KeyIndex.of_validated(lake, params.schema.key)
    reports = [
        validate_partition(lake, landing, params.schema, params.validation, extra, known)
        for landing in pending_partitions(lake, source)
    ]
    return summarize(reports)


class KeyIndex:
    """The event keys already in the validated tier, so that each event enters it exactly once.

    At-least-once sources (a Kafka run that crashed after landing but before
    committing its offsets) land some events again in a later partition; those
    copies are dropped on the way to the validated tier.
    """

    def __init__(self, arrays: list[pa.Array] | None = None) -> None:
        self._arrays = list(arrays or [])

    @classmethod
    def of_validated(cls, lake: Lake, key: str) -> KeyIndex:
        """The keys of every complete validated partition (only the key column is read)."""
        arrays = []
        for partition in lake.complete_partitions("validated"):
            for path in lake.part_files(partition):
                with lake.fs.open(path, "rb") as fh:
                    arrays.append(
                        pq.read_table(fh, columns=[key]).column(key).combine_chunks().cast(pa.string())
                    )
        return cls(arrays)

    def seen(self, keys: pd.Series) -> np.ndarray:
        """A mask of the keys already in the index."""
        if not self._arrays or keys.empty:
            return np.zeros(len(keys), dtype=bool)
        known = pa.concat_arrays(self._arrays)
        mask: np.ndarray = pc.is_in(pa.array(keys, type=pa.string()), value_set=known).to_numpy(
            zero_copy_only=False
        )
        return mask

    def add(self, keys: pd.Series) -> None:
        """Remember ``keys`` as validated (a batch that just entered the tier)."""
        self._arrays.append(pa.array(keys, type=pa.string()))


def pending_partitions(lake: Lake, source: str | None = None) -> list[str]:
    """Complete landing partitions with neither a validated nor a rejected partition."""
    done = {
        _suffix(lake, p, tier)
        for tier in ("validated", "rejected")
        for p in lake.complete_partitions(tier, source)
    }
    return [p for p in lake.complete_partitions("landing", source) if _suffix(lake, p, "landing") not in done]


def _suffix(lake: Lake, partition: str, tier: str) -> str:
    """``source=<src>/run=<run>`` of a partition path in ``tier``."""
    return partition[len(lake.path(tier)) + 1 :]


def validate_partition(
    lake: Lake,
    landing: str,
    schema: Schema,
    cfg: ValidateConfig,
    extra: list[dict[str, Any]] | None = None,
    known: KeyIndex | None = None,
) -> dict[str, Any]:
    """Validate one landed partition and write its report and its validated or rejected partition.

    ``known`` holds the keys already validated (default: read from the lake); a
    passing batch adds its new keys to it.
    """
    suffix = _suffix(lake, landing, "landing")
    for tier in ("validated", "rejected"):
        lake.reset_partition(lake.path(tier, suffix))  # leftovers of a crashed attempt, never complete ones
    frame = lake.read_partition(landing)
    report_dir = lake.path("reports", "validation", suffix)
    lake.reset_partition(report_dir)
    outcome = _validate_with_docs(lake, frame, schema, cfg, extra, f"{report_dir}/data_docs", suffix)
    result_path = f"{report_dir}/result.json"
    lake.write_json(result_path, outcome.to_json())
    record = {
        "landing": landing,
        "result_path": result_path,
        "docs_index": outcome.docs_index,
        "gx_success": outcome.success,
        "statistics": outcome.statistics,
    }
    if outcome.success:
        known = known if known is not None else KeyIndex.of_validated(lake, schema.key)
        return _write_validated(lake, frame, schema, lake.path("validated", suffix), record, known)
    return _write_rejected(lake, frame, outcome, lake.path("rejected", suffix), record)


def _validate_with_docs(
    lake: Lake,
    frame: pd.DataFrame,
    schema: Schema,
    cfg: ValidateConfig,
    extra: list[dict[str, Any]] | None,
    docs_dir: str,
    run_name: str,
) -> ValidationOutcome:
    """Run the suite; Data Docs go straight to a local lake, or via a tempdir to a remote one."""
    if isinstance(lake.fs, LocalFileSystem):
        return validate_frame(frame, schema, cfg, extra, docs_dir=docs_dir, run_name=run_name)
    with tempfile.TemporaryDirectory() as tmp:
        outcome = validate_frame(frame, schema, cfg, extra, docs_dir=tmp, run_name=run_name)
        lake.fs.put(f"{tmp}/", docs_dir, recursive=True)
    return replace(outcome, docs_index=f"{docs_dir}/index.html" if outcome.docs_index else None)


def _write_validated(
    lake: Lake, frame: pd.DataFrame, schema: Schema, partition: str, record: dict[str, Any], known: KeyIndex
) -> dict[str, Any]:
    """The batch, each key once (its first copy) and only keys not validated before; its manifest last."""
    unique = frame.drop_duplicates(subset=schema.key, keep="first")
    again = known.seen(unique[schema.key])
    validated = unique[~again]
    lake.write_table(f"{partition}/{PART}", pa.Table.from_pandas(validated, preserve_index=False))
    known.add(validated[schema.key])
    manifest = {
        **record,
        "rows": len(validated),
        "duplicates_dropped": len(frame) - len(validated),
        "already_validated": int(again.sum()),
        "written_at": _now(),
    }
    lake.write_json(f"{partition}/{MANIFEST}", manifest)
    return _partition_summary("pass", partition, manifest, [])


def _write_rejected(
    lake: Lake, frame: pd.DataFrame, outcome: ValidationOutcome, partition: str, record: dict[str, Any]
) -> dict[str, Any]:
    """Only a manifest: the failed expectations with examples; the data stays in landing."""
    described = [describe_failure(f) for f in outcome.failures]
    manifest = {
        **record,
        "rows": len(frame),
        "failures": outcome.failures,
        "failed_expectations": described,
        "written_at": _now(),
    }
    lake.write_json(f"{partition}/{MANIFEST}", manifest)
    return _partition_summary("fail", partition, manifest, described)


def _partition_summary(
    verdict: str, output: str, manifest: dict[str, Any], described: list[str]
) -> dict[str, Any]:
    return {
        "partition": manifest["landing"],
        "verdict": verdict,
        "rows": manifest["rows"],
        "failed_expectations": described,
        "result_path": manifest["result_path"],
        "docs_index": manifest["docs_index"],
        "output": output,
    }


def summarize(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """The run's verdict: ``fail`` if any partition failed, ``nothing_to_validate`` if none was pending."""
    if not reports:
        verdict = "nothing_to_validate"
    else:
        verdict = "fail" if any(r["verdict"] == "fail" for r in reports) else "pass"
    return {
        "verdict": verdict,
        "partitions": reports,
        "validated_rows": sum(r["rows"] for r in reports if r["verdict"] == "pass"),
        "rejected_rows": sum(r["rows"] for r in reports if r["verdict"] == "fail"),
    }


def _now() -> str:
    return datetime.now(UTC).isoformat()
