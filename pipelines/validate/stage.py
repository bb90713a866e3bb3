"""Validate: the gate between landed batches and training data, at the lake's edge.

Every complete landing partition that has neither a validated nor a rejected
partition yet is checked by the suite (:mod:`.suite`, run by :mod:`.gate`). A
batch that passes is copied to ``validated/``, each event key once; one that
fails gets a ``rejected/`` manifest that names the failed expectations with
examples, and never reaches training. Either way the GX result is kept as JSON
and as Data Docs HTML under ``reports/validation/``. Landing data is never modified.

An event sent again with the same key carries its label, which may have changed
since (a chargeback turns a transaction into fraud): :func:`split_batch` keeps
such labels, and a passing batch lands them as late labels in the ``labels/``
tier (:func:`pipelines.scoring.write_labels`), in a partition named after the
validated one, before the validated manifest commits the batch.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
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
from pipelines.scoring import LABELS, measures_late_labels, read_labels, write_labels
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
    pending = pending_partitions(lake, source)
    for landing in pending:  # a crashed attempt's labels must not count as known ones
        reset_outputs(lake, _suffix(lake, landing, "landing"))
    known = KeyIndex.of_validated(lake, params.schema)
    reports = [
        validate_partition(lake, landing, params.schema, params.validation, extra, known)
        for landing in pending
    ]
    return summarize(reports)


class KeyIndex:
    """The event keys already in the validated tier, so that each event enters it exactly once, and the
    latest label known for each, so that an event sent again lands its label only when it is news.

    At-least-once sources (a Kafka run that crashed after landing but before
    committing its offsets) land some events again in a later partition; those
    copies are dropped on the way to the validated tier. A source may also send
    an event again on purpose, with its label changed: that label is a late label.
    The labels are tracked when ``labels`` is given (one array per key array), and
    ``late`` holds the ``labels/`` tier's latest label per key (they win).
    """

    def __init__(
        self,
        arrays: list[pa.Array] | None = None,
        labels: list[pa.Array] | None = None,
        late: pd.Series | None = None,
    ) -> None:
        self._arrays = list(arrays or [])
        self._labels = None if labels is None else list(labels)
        self._late = pd.Series(dtype="float64") if late is None else late.astype("float64")
        self._known: tuple[pa.Array, pa.Array | None] | None = None

    @classmethod
    def of_validated(cls, lake: Lake, schema: Schema) -> KeyIndex:
        """The keys of every complete validated partition (only the key column is read), and, when the
        task's late labels are kept (:func:`measures_late_labels`), their 0/1 labels (the target column)
        and the ``labels/`` tier's latest label per key."""
        tracked = measures_late_labels(schema)
        columns = [schema.key, schema.target] if tracked else [schema.key]
        arrays, labels = [], []
        for partition in lake.complete_partitions("validated"):
            for path in lake.part_files(partition):
                with lake.fs.open(path, "rb") as fh:
                    table = pq.read_table(fh, columns=columns)
                arrays.append(table.column(schema.key).combine_chunks().cast(pa.string()))
                if tracked:
                    labels.append(table.column(schema.target).combine_chunks().cast(pa.int8()))
        if not tracked:
            return cls(arrays)
        late = read_labels(lake, schema)
        if late is None:
            return cls(arrays, labels)
        return cls(
            arrays, labels, pd.Series(late[schema.target].to_numpy(), index=late[schema.key].to_numpy())
        )

    def _lookup(self) -> tuple[pa.Array, pa.Array | None]:
        if self._known is None:
            labels = None if self._labels is None else pa.concat_arrays(self._labels)
            self._known = (pa.concat_arrays(self._arrays), labels)
        return self._known

    def seen(self, keys: pd.Series) -> np.ndarray:
        """A mask of the keys already in the index."""
        if not self._arrays or keys.empty:
            return np.zeros(len(keys), dtype=bool)
        known, _ = self._lookup()
        mask: np.ndarray = pc.is_in(pa.array(keys, type=pa.string()), value_set=known).to_numpy(
            zero_copy_only=False
        )
        return mask

    def labels_of(self, keys: pd.Series) -> np.ndarray:
        """The latest label known for each key (its late label, else its validated copy's); NaN for none."""
        found = np.full(len(keys), np.nan)
        if self._arrays and self._labels is not None and not keys.empty:
            known, labels = self._lookup()
            at = pc.index_in(pa.array(keys, type=pa.string()), value_set=known)
            found = pc.take(labels, at).cast(pa.float64()).to_numpy(zero_copy_only=False)
        if len(self._late) and not keys.empty:
            late = keys.astype("string").map(self._late).to_numpy(dtype="float64", na_value=np.nan)
            found = np.where(np.isnan(late), found, late)
        return found

    def add(self, keys: pd.Series, labels: pd.Series | None = None) -> None:
        """Remember ``keys`` as validated (a batch that just entered the tier), with their ``labels``."""
        self._arrays.append(pa.array(keys, type=pa.string()))
        if self._labels is not None:
            values = np.full(len(keys), None) if labels is None else labels.to_numpy()
            self._labels.append(pa.array(values, type=pa.int8()))
        self._known = None

    def add_late(self, keys: pd.Series, labels: pd.Series) -> None:
        """Remember late labels just landed: they win over every label known before."""
        late = pd.Series(labels.to_numpy(dtype="float64"), index=keys.astype("string").to_numpy())
        merged = pd.concat([self._late, late]) if len(self._late) else late
        self._late = merged[~merged.index.duplicated(keep="last")]


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
    reset_outputs(lake, suffix)
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
        known = known if known is not None else KeyIndex.of_validated(lake, schema)
        return _write_validated(lake, frame, schema, suffix, record, known)
    return _write_rejected(lake, frame, outcome, lake.path("rejected", suffix), record)


def reset_outputs(lake: Lake, suffix: str) -> None:
    """Remove what a crashed attempt at ``suffix`` left: its validated, rejected and labels partitions
    (never complete validated or rejected ones: those partitions are not pending)."""
    for tier in ("validated", "rejected", LABELS):
        lake.reset_partition(lake.path(tier, suffix))


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


@dataclass(frozen=True)
class SplitBatch:
    """A passing batch sorted for the validated and the labels tiers."""

    validated: pd.DataFrame  # each key not validated before, once (its first copy)
    late_labels: pd.DataFrame  # key, target: the last label of each key whose label is news
    already_validated: int  # keys of the batch validated by an earlier partition


def split_batch(frame: pd.DataFrame, schema: Schema, known: KeyIndex, keep_labels: bool = True) -> SplitBatch:
    """The batch's new events, each key once, and the late labels its repeated keys carry.

    Pure (``known`` is in memory). The last copy of each key gives its label; it is a late label when it
    differs from the latest label known for the key: a late label landed before, else the validated copy's
    (validated by an earlier partition, or the batch's first copy, validated now). An event delivered again
    with its label unchanged gives none. ``keep_labels=False`` keeps no label (the tasks whose late labels
    are not kept, :func:`pipelines.scoring.measures_late_labels`).
    """
    key, target = schema.key, schema.target
    first = frame.drop_duplicates(subset=key, keep="first")
    again = known.seen(first[key])
    validated = first[~again]
    if not keep_labels:
        return SplitBatch(validated, frame.iloc[:0][[key, target]], int(again.sum()))
    last = frame.drop_duplicates(subset=key, keep="last")
    latest = known.labels_of(last[key])
    now = pd.Series(first[target].to_numpy(dtype="float64"), index=first[key].to_numpy())
    latest = np.where(np.isnan(latest), last[key].map(now).to_numpy(dtype="float64"), latest)
    news = last[target].to_numpy(dtype="float64") != latest
    late = last.loc[news, [key, target]].reset_index(drop=True)
    return SplitBatch(validated, late, int(again.sum()))


def _write_validated(
    lake: Lake, frame: pd.DataFrame, schema: Schema, suffix: str, record: dict[str, Any], known: KeyIndex
) -> dict[str, Any]:
    """The batch, each key once (its first copy) and only keys not validated before; the late labels its
    repeated keys carry (:func:`split_batch`), in ``labels/<suffix>``; the validated manifest last."""
    split = split_batch(frame, schema, known, keep_labels=measures_late_labels(schema))
    partition = lake.path("validated", suffix)
    lake.write_table(f"{partition}/{PART}", pa.Table.from_pandas(split.validated, preserve_index=False))
    labels = None
    if len(split.late_labels):
        labels = write_labels(lake, lake.path(LABELS, suffix), split.late_labels, schema, record["landing"])
    known.add(split.validated[schema.key], split.validated[schema.target])
    known.add_late(split.late_labels[schema.key], split.late_labels[schema.target])
    manifest = {
        **record,
        "rows": len(split.validated),
        "duplicates_dropped": len(frame) - len(split.validated),
        "already_validated": split.already_validated,
        "late_labels": len(split.late_labels),
        "labels_partition": labels,
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
        "late_labels": manifest.get("late_labels", 0),
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
        "late_labels": sum(r["late_labels"] for r in reports),
    }


def _now() -> str:
    return datetime.now(UTC).isoformat()
