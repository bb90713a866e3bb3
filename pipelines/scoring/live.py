"""Live performance: the champion's predictions joined with labels that arrive later, per day.

A prediction carries the event's label when it was known at scoring time. Labels that come later are
landed in the lake's ``labels/`` tier (:func:`write_labels`: the event key and the label, the manifest
last): from a label file (:func:`land_labels`), or by validation, from a later event with the same key
(``labels/source=<src>/run=<run>/``, named after the validated partition). :func:`join_labels` puts them
on the predictions, a later label winning over an earlier one, and flags the rows whose label it changed
or filled. :func:`daily_performance` scores each day's labelled predictions of each model version with
:mod:`pipelines.evaluate.metrics` and a block-bootstrap interval over blocks of ``promote.block`` event
time (:func:`pipelines.promote.bootstrap_metric`), as the promotion gate judges. :func:`measure` is the
edge (``flywheel performance``, the ``measure`` task of ``flywheel_scoring``), and :func:`live_scores` is
what the drift check's performance trigger reads: the scores the champion actually gave, with labels.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from pipelines.common.config import Params, PromoteConfig, Schema
from pipelines.common.lake import MANIFEST, Lake, safe_run_id
from pipelines.common.settings import Settings
from pipelines.evaluate.metrics import metric as metric_value
from pipelines.promote import block_ids, bootstrap_metric
from pipelines.scoring.manifest import PART, PREDICTIONS
from pipelines.scoring.stage import SCORE, ScoreError

LABELS = "labels"
REPORT = ("reports", "performance", "live.json")


class LabelError(ScoreError):
    """A label file cannot be read: the message names the file, the column or value, and what was expected."""


# -- labels ------------------------------------------------------------------------------------


def read_label_file(path: str | Path, schema: Schema) -> pd.DataFrame:
    """A label file (Parquet, CSV or JSON lines) as ``key, target`` rows, the label as 0/1.

    Raises:
        LabelError: the format, a column or a label value is not what the schema expects.
    """
    text = str(path)
    readers = {".parquet": pd.read_parquet, ".csv": pd.read_csv}
    suffix = Path(text).suffix.lower()
    if suffix in readers:
        frame = readers[suffix](text)
    elif suffix in (".jsonl", ".json", ".ndjson"):
        frame = pd.read_json(text, lines=True)
    else:
        raise LabelError(f"label file {text}: suffix {suffix!r}; expected .parquet, .csv or .jsonl")
    missing = [c for c in (schema.key, schema.target) if c not in frame.columns]
    if missing:
        raise LabelError(
            f"label file {text} lacks column(s) {missing}; expected {schema.key!r} and {schema.target!r}"
        )
    labels = pd.to_numeric(frame[schema.target], errors="coerce")
    bad = frame[schema.target][~labels.isin([0, 1])]
    if len(bad):
        raise LabelError(
            f"label file {text}: {len(bad)} rows have {schema.target!r} values such as {bad.iloc[0]!r}; "
            "expected 0 or 1"
        )
    return pd.DataFrame(
        {schema.key: frame[schema.key].astype("string"), schema.target: labels.astype("int8")}
    )


def measures_late_labels(schema: Schema) -> bool:
    """Whether live performance from late labels is measured for the schema's task (binary only: the
    labels tier holds 0/1 labels, and the metric per day is a binary ranking metric)."""
    return schema.task == "binary"


def land_labels(lake: Lake, labels: pd.DataFrame, run_id: str, origin: str, schema: Schema) -> str:
    """Land a label file's labels as ``labels/run=<run>/`` (:func:`write_labels`); the partition's path."""
    return write_labels(lake, lake.partition(LABELS, run_id), labels, schema, origin)


def write_labels(lake: Lake, partition: str, labels: pd.DataFrame, schema: Schema, origin: str) -> str:
    """Write late labels as one partition of the ``labels/`` tier: the rows (the key as a string, the 0/1
    label as int8), then the manifest naming their ``origin``; the partition's path.

    A partition written before is reset first, so a retried run rewrites its own labels, never adds to them.
    """
    rows = pd.DataFrame(
        {
            schema.key: labels[schema.key].astype("string").to_numpy(),
            schema.target: labels[schema.target].astype("int8").to_numpy(),
        }
    )
    lake.reset_partition(partition)
    lake.write_table(f"{partition}/{PART}", pa.Table.from_pandas(rows, preserve_index=False))
    lake.write_json(
        f"{partition}/{MANIFEST}",
        {"rows": len(rows), "origin": origin, "written_at": datetime.now(UTC).isoformat()},
    )
    return partition


def _read_tier(lake: Lake, tier: str) -> pd.DataFrame | None:
    paths = lake.complete_partitions(tier)
    written = {p: (lake.read_json(f"{p}/{MANIFEST}") or {}).get("written_at", "") for p in paths}
    frames = [lake.read_partition(p) for p in sorted(paths, key=lambda p: (written[p], p))]
    return pd.concat(frames, ignore_index=True) if frames else None


def read_predictions(lake: Lake) -> pd.DataFrame | None:
    """Every complete predictions partition as one frame; None when nothing is scored yet."""
    return _read_tier(lake, PREDICTIONS)


def read_labels(lake: Lake, schema: Schema) -> pd.DataFrame | None:
    """Every landed late label, the last one per key kept; None when none arrived."""
    frame = _read_tier(lake, LABELS)
    return None if frame is None else frame.drop_duplicates(subset=schema.key, keep="last")


def join_labels(predictions: pd.DataFrame, labels: pd.DataFrame | None, schema: Schema) -> pd.DataFrame:
    """The predictions with each late label put on its event (it replaces a label known at scoring time).

    Pure. ``late_label`` says which rows a late label told something new: the prediction had no label,
    or a different one. A late label equal to the one known at scoring time (an event delivered again)
    changes nothing and is not flagged.
    """
    joined = predictions.copy()
    joined["late_label"] = False
    if labels is None or labels.empty:
        return joined
    late = labels.set_index(labels[schema.key].astype("string"))[schema.target]
    found = joined[schema.key].astype("string").map(late).astype("Float64")
    known = joined[schema.target].astype("Float64")
    has = found.notna()
    joined[schema.target] = found.where(has, known).astype("Int8")
    joined["late_label"] = (has & found.ne(known).fillna(True)).to_numpy(dtype=bool)
    return joined


# -- the metric per day ------------------------------------------------------------------------


def daily_performance(
    joined: pd.DataFrame, schema: Schema, metric: str, gate: PromoteConfig, min_rows: int, seed: int = 0
) -> list[dict[str, Any]]:
    """Per UTC day and model version: labelled rows, ``metric`` and its block-bootstrap interval.

    Pure. A day with fewer than ``min_rows`` labelled rows, one class, or fewer than ``gate.min_blocks``
    blocks of ``gate.block`` gets the numbers it can and a ``note`` saying why the rest is missing.
    """
    labelled = joined[joined[schema.target].notna()]
    times = pd.to_datetime(labelled[schema.event_time], utc=True)
    rows = []
    for (day, version), part in labelled.groupby([times.dt.strftime("%Y-%m-%d"), "model_version"], sort=True):
        rows.append(_day(part, str(day), str(version), schema, metric, gate, min_rows, seed))
    return rows


def _day(
    part: pd.DataFrame,
    day: str,
    version: str,
    schema: Schema,
    metric: str,
    gate: PromoteConfig,
    min_rows: int,
    seed: int,
) -> dict[str, Any]:
    y = part[schema.target].astype("int64").to_numpy()
    p = part[SCORE].to_numpy(dtype="float64")
    row: dict[str, Any] = {
        "day": day,
        "model_version": version,
        "metric": metric,
        "rows": len(part),
        "late_labels": int(part["late_label"].sum()) if "late_label" in part else 0,
        "value": None,
        "interval": None,
        "note": None,
    }
    if len(part) < min_rows:
        return {**row, "note": f"{len(part)} labelled predictions, fewer than score.min_day_rows {min_rows}"}
    if len(np.unique(y)) < 2:
        return {**row, "note": f"the {len(part)} labelled predictions hold one class"}
    row["value"] = metric_value(metric, y, p)
    ids = block_ids(part[schema.event_time].reset_index(drop=True), gate.block)
    blocks = int(ids.max()) + 1
    if blocks < gate.min_blocks:
        return {
            **row,
            "note": f"{blocks} blocks of {gate.block}, fewer than promote.min_blocks {gate.min_blocks}",
        }
    interval = bootstrap_metric(y, p, metric, gate.bootstrap_rounds, gate.confidence, ids, seed, gate.block)
    row["interval"] = {
        "low": interval.low,
        "high": interval.high,
        "confidence": interval.confidence,
        "blocks": interval.blocks,
        "block": interval.block,
        "rounds": interval.rounds,
        "se": interval.se,
    }
    return row


# -- the edges ---------------------------------------------------------------------------------


def live_scores(
    lake: Lake, schema: Schema, version: str, start: datetime, end: datetime
) -> pd.DataFrame | None:
    """The labelled predictions of model ``version`` with event time in ``[start, end)``, late labels
    joined; None when there are none, or when the task is not binary (live performance is measured for
    binary models; the drift check then judges the window's own labels)."""
    if not measures_late_labels(schema):
        return None
    predictions = read_predictions(lake)
    if predictions is None:
        return None
    times = pd.to_datetime(predictions[schema.event_time], utc=True)
    mine = predictions[
        (predictions["model_version"].astype(str) == str(version)) & (times >= start) & (times < end)
    ]
    joined = join_labels(mine, read_labels(lake, schema), schema)
    joined = joined[joined[schema.target].notna()].reset_index(drop=True)
    return joined if len(joined) else None


def measure(
    params: Params, settings: Settings, run_id: str, labels: str | Path | None = None
) -> dict[str, Any]:
    """Land a label file (when given), join every late label to the predictions and score each day.

    Writes ``reports/performance/live.json`` in the lake; returns the same summary.
    """
    lake, schema = Lake(settings.lake_root(params)), params.schema
    if not measures_late_labels(schema):
        raise LabelError(
            f"live performance from late labels is measured for binary models; schema.task is "
            f"{schema.task!r} (its predictions are in the lake; the drift check judges each window's labels)"
        )
    landed = None
    if labels is not None:
        landed = land_labels(lake, read_label_file(labels, schema), safe_run_id(run_id), str(labels), schema)
    predictions = read_predictions(lake)
    days: list[dict[str, Any]] = []
    if predictions is not None:
        joined = join_labels(predictions, read_labels(lake, schema), schema)
        days = daily_performance(
            joined,
            schema,
            params.drift.performance_metric,
            params.promote,
            params.score.min_day_rows,
            params.drift.seed,
        )
    report = lake.path(*REPORT)
    summary: dict[str, Any] = {
        "run_id": run_id,
        "metric": params.drift.performance_metric,
        "labels_landed": landed,
        "predictions": 0 if predictions is None else len(predictions),
        "days": days,
        "report": report,
    }
    lake.write_json(report, summary)
    return summary
