"""Score: the champion scores every newly validated event exactly once, into the lake's predictions tier.

:func:`run` is the stage (``flywheel score``, the ``flywheel_scoring`` DAG). It asks the registry who
the champion is (:func:`pipelines.promote.champion_version`, once per run: a new champion takes effect
at the next run), plans which validated partitions to score from the predictions manifests
(:func:`pipelines.scoring.manifest.plan`), loads the champion's MLflow pyfunc (preprocessing inside) by
its version, and for each partition writes the predictions, publishes them when ``score.publish_topic``
is set, and writes the manifest last. The contract is in :mod:`pipelines.scoring.manifest`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from pipelines.common.config import Params, Schema
from pipelines.common.errors import FlywheelError
from pipelines.common.lake import MANIFEST, Lake
from pipelines.common.settings import Settings
from pipelines.promote import champion_version
from pipelines.scoring import manifest
from pipelines.scoring.manifest import PART

if TYPE_CHECKING:
    from pipelines.ingest import KafkaEndpoint

log = logging.getLogger(__name__)

Predict = Callable[[pd.DataFrame], pd.DataFrame]  # raw feature rows -> ``probability`` and ``label``
SCORE, PREDICTION = "score", "prediction"


class ScoreError(FlywheelError):
    """Scoring cannot be carried out; the message names what is missing or wrong."""


class NoChampion(ScoreError):
    """Nothing is promoted yet, so there is no model to score with."""


@dataclass(frozen=True)
class Model:
    """The model version that scores: its registered name, version and the MLflow run that trained it."""

    name: str
    version: str
    run_id: str

    @property
    def uri(self) -> str:
        """The version's URI, pinned: the alias may move while a run scores."""
        return f"models:/{self.name}/{self.version}"


def score_frame(
    frame: pd.DataFrame, schema: Schema, predict: Predict, model: Model, run_id: str
) -> pd.DataFrame:
    """The predictions of validated rows: key, event time, score, predicted class, the label when known,
    the model and the scoring run. Pure apart from ``predict``.

    Raises:
        ScoreError: a schema column is missing, or the model answered with the wrong number of rows.
    """
    return score_frames([frame], schema, predict, model, run_id)[0]


def score_frames(
    frames: Sequence[pd.DataFrame], schema: Schema, predict: Predict, model: Model, run_id: str
) -> list[pd.DataFrame]:
    """:func:`score_frame` of each frame, with one ``predict`` call for all of them (a model call has a
    cost of its own, whatever its rows). Pure apart from ``predict``.

    Raises:
        ScoreError: a schema column is missing, or the model answered with the wrong number of rows.
    """
    for frame in frames:
        _check_columns(list(frame.columns), schema)
    features = [frame[list(schema.feature_names)] for frame in frames]
    rows = features[0] if len(features) == 1 else pd.concat(features, ignore_index=True)
    out = predict(rows)
    if len(out) != len(rows):
        raise ScoreError(f"the model {model.uri} returned {len(out)} predictions for {len(rows)} rows")
    scores, classes = task_outputs(schema, out)
    ends = np.cumsum([len(frame) for frame in frames]).tolist()
    return [
        _predictions(
            frame, scores[end - len(frame) : end], classes[end - len(frame) : end], schema, model, run_id
        )
        for frame, end in zip(frames, ends, strict=True)
    ]


def _predictions(
    frame: pd.DataFrame, scores: np.ndarray, classes: Any, schema: Schema, model: Model, run_id: str
) -> pd.DataFrame:
    label = frame[schema.target] if schema.target in frame.columns else pd.Series(pd.NA, index=frame.index)
    return pd.DataFrame(
        {
            # ``.array``, not ``.to_numpy()``: a zone-aware event time would become one object per row
            schema.key: frame[schema.key].astype("string").array,
            schema.event_time: frame[schema.event_time].array,
            SCORE: scores,
            PREDICTION: classes,
            schema.target: task_label(schema, label),
            **_run_values(model, run_id),
        }
    )


def task_outputs(schema: Schema, out: pd.DataFrame) -> tuple[Any, Any]:
    """``score`` and ``prediction`` per ``schema.task``: a binary model's probability and 0/1 label; a
    multiclass model's probability of the class it predicts and that class; a regression model's number
    (both columns)."""
    if schema.task == "regression":
        value = np.asarray(out["prediction"], dtype="float64")
        return value, value
    if schema.task == "multiclass":
        return np.asarray(out["probability"], dtype="float64"), pd.array(
            out["label"].astype(str), dtype="string"
        )
    return np.asarray(out["probability"], dtype="float64"), np.asarray(out["label"], dtype="int8")


def task_label(schema: Schema, label: pd.Series) -> Any:
    """The label as the task types it: 0/1, a class name, or a number (missing where unknown)."""
    if schema.task == "regression":
        return pd.array(pd.to_numeric(label, errors="coerce").to_numpy(), dtype="Float64")
    if schema.task == "multiclass":
        return pd.array(label.astype("string").to_numpy(), dtype="string")
    return pd.array(label.to_numpy(), dtype="Int8")


def _run_values(model: Model, run_id: str) -> dict[str, str]:
    """The columns that hold one value for a whole scoring run."""
    return {
        "model_name": model.name,
        "model_version": model.version,
        "model_run_id": model.run_id,
        "scoring_run_id": run_id,
    }


def prediction_table(predictions: pd.DataFrame, constant: dict[str, str]) -> pa.Table:
    """Predictions as the Arrow table written to the lake, the same as ``pa.Table.from_pandas`` gives;
    the ``constant`` columns (one value each) are built in Arrow rather than converted one object a row.
    """
    table = pa.Table.from_pandas(predictions.drop(columns=list(constant)), preserve_index=False)
    for name, value in constant.items():
        table = table.append_column(name, _constant_array(value, len(predictions)))
    return table


def champion_model(params: Params, settings: Settings) -> Model:
    """The champion now, pinned by version.

    Raises:
        NoChampion: ``promote.model_name`` has no ``champion`` alias yet.
    """
    found = champion_version(params, settings)
    if found is None:
        raise NoChampion(
            f"model {params.promote.model_name!r} has no 'champion' alias; expected a promoted version "
            "(run the flywheel_training DAG or flywheel repro first)"
        )
    return Model(str(found.name), str(found.version), str(found.run_id))


def load_predict(model: Model) -> Predict:
    """The model version's MLflow pyfunc as ``raw rows -> probability, label``."""
    import mlflow

    pyfunc = mlflow.pyfunc.load_model(model.uri)
    return lambda rows: pd.DataFrame(pyfunc.predict(rows))


def read_validated(lake: Lake, name: str, schema: Schema) -> pd.DataFrame:
    """The columns scoring reads of validated partition ``name`` (key, event time, features, target):
    only those become pandas columns."""
    return read_validated_table(lake, name, schema).to_pandas()


def read_validated_table(lake: Lake, name: str, schema: Schema) -> pa.Table:
    """The Arrow columns scoring reads of validated partition ``name``: key, event time, features and the
    target when the partition has it."""
    wanted = list(dict.fromkeys((schema.key, schema.event_time, *schema.feature_names, schema.target)))
    path = manifest.partition_path(lake, name, manifest.VALIDATED)
    table = lake.read_partition_table(path, wanted, missing_ok=True)
    return table.select([c for c in wanted if c in table.column_names])


def score_tables(
    tables: Sequence[pa.Table],
    schema: Schema,
    predict: Predict,
    model: Model,
    run_id: str,
    layout: pa.Schema | None = None,
) -> list[pa.Table]:
    """The predictions of validated Arrow tables, one ``predict`` call for all of them: the same rows,
    types and pandas metadata :func:`score_frames` and :func:`prediction_table` give, but only the
    features become pandas; key, event time and label stay Arrow columns (no Python object per row).
    ``layout``: the predictions' Arrow schema (:func:`prediction_schema`), when the caller made it once
    for a run.

    Raises:
        ScoreError: a schema column is missing, or the model answered with the wrong number of rows.
    """
    if not tables:
        return []
    for table in tables:
        _check_columns(table.column_names, schema)
    features = [table.select(list(schema.feature_names)).to_pandas() for table in tables]
    rows = features[0] if len(features) == 1 else pd.concat(features, ignore_index=True)
    out = predict(rows)
    if len(out) != len(rows):
        raise ScoreError(f"the model {model.uri} returned {len(out)} predictions for {len(rows)} rows")
    scores, classes = task_outputs(schema, out)
    layout = layout or prediction_schema(tables[0], schema, model, run_id)
    constant = _run_values(model, run_id)
    tables_out, start = [], 0
    for table in tables:
        end = start + table.num_rows
        arrays = [
            table[schema.key].cast(pa.string()),
            table[schema.event_time],
            pa.array(scores[start:end], pa.float64()),
            pa.array(classes[start:end]),
            _label_array(schema, table),
            *(_constant_array(value, table.num_rows) for value in constant.values()),
        ]
        tables_out.append(
            pa.Table.from_arrays([a.cast(f.type) for a, f in zip(arrays, layout, strict=True)], schema=layout)
        )
        start = end
    return tables_out


def _check_columns(columns: Sequence[str], schema: Schema) -> None:
    missing = [c for c in (schema.key, schema.event_time, *schema.feature_names) if c not in columns]
    if missing:
        raise ScoreError(f"validated rows lack column(s) {missing}; expected the schema's columns")


def _label_array(schema: Schema, table: pa.Table) -> pa.ChunkedArray | pa.Array:
    """The label column as :func:`task_label` types it, from Arrow: null where unknown."""
    kind = {"regression": pa.float64(), "multiclass": pa.string()}.get(schema.task, pa.int8())
    if schema.target not in table.column_names:
        return pa.nulls(table.num_rows, kind)
    return table[schema.target].cast(kind)


def _constant_array(value: str, rows: int) -> pa.Array:
    """``value`` ``rows`` times, as a string column (built from a one-entry dictionary)."""
    zeros = pa.array(np.zeros(rows, dtype="int32"))
    return pa.DictionaryArray.from_arrays(zeros, pa.array([value], pa.string())).cast(pa.string())


def prediction_schema(table: pa.Table, schema: Schema, model: Model, run_id: str) -> pa.Schema:
    """The Arrow schema, pandas metadata included, of the predictions of validated ``table`` (its
    columns' types matter, not its rows), as the pandas path writes them."""
    empty = table.slice(0, 0).to_pandas()
    scores, classes = task_outputs(schema, _empty_output(schema))
    frame = _predictions(empty, scores, classes, schema, model, run_id)
    return prediction_table(frame, _run_values(model, run_id)).schema


def _empty_output(schema: Schema) -> pd.DataFrame:
    if schema.task == "regression":
        return pd.DataFrame({"prediction": np.empty(0, dtype="float64")})
    return pd.DataFrame({"probability": np.empty(0, dtype="float64"), "label": np.empty(0, dtype="int64")})


def score_partition(
    lake: Lake,
    name: str,
    params: Params,
    predict: Predict,
    model: Model,
    run_id: str,
    publish: Callable[[pd.DataFrame], int] | None = None,
) -> dict[str, Any]:
    """Score one validated partition: predictions first, then (optionally) Kafka, then the manifest."""
    (predictions,) = score_tables(
        [read_validated_table(lake, name, params.schema)], params.schema, predict, model, run_id
    )
    return write_predictions(lake, name, params, predictions, model, run_id, publish)


def write_predictions(
    lake: Lake,
    name: str,
    params: Params,
    predictions: pa.Table,
    model: Model,
    run_id: str,
    publish: Callable[[pd.DataFrame], int] | None = None,
) -> dict[str, Any]:
    """Write the predictions of validated partition ``name``, publish them (optionally), then write the
    manifest that makes them count as scored; return the manifest."""
    target = manifest.partition_path(lake, name)
    lake.reset_partition(target)  # a partition written without its manifest, or one being rescored
    lake.write_table(f"{target}/{PART}", predictions)
    published = publish(predictions.to_pandas()) if publish is not None else None
    labels = predictions[params.schema.target]
    entry = {
        "validated": f"{manifest.VALIDATED}/{name}",
        "rows": predictions.num_rows,
        "labelled": len(labels) - labels.null_count,
        "model_name": model.name,
        "model_version": model.version,
        "model_run_id": model.run_id,
        "scoring_run_id": run_id,
        "published": published,
        "topic": params.score.publish_topic if publish is not None else None,
        "written_at": datetime.now(UTC).isoformat(),
    }
    lake.write_json(f"{target}/{MANIFEST}", entry)
    log.info("score: %s: %d rows by %s", name, predictions.num_rows, model.uri)
    return entry


def score_partitions(
    lake: Lake,
    names: Sequence[str],
    params: Params,
    load: Callable[[], Predict],
    model: Model,
    run_id: str,
    publish: Callable[[pd.DataFrame], int] | None = None,
) -> list[dict[str, Any]]:
    """Score validated partitions in order as :func:`score_partition` does, with the model ``load``
    returns (called once, while the first partition is read); return their manifests.

    Consecutive partitions are scored together, about ``score.batch_rows`` rows per model call, while
    one I/O thread reads the next partition and writes the previous batch's predictions. The thread
    runs its tasks in the order they are submitted, so partitions are written one after another, each
    its predictions, its publishing, then its manifest: a run killed anywhere still leaves at most one
    predictions partition without its manifest. Parquet and fsync release the GIL, so the lake's I/O
    overlaps the model's scoring instead of adding to it.
    """
    writes: list[Future[dict[str, Any]]] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="flywheel-score-io") as io:
        reads = [io.submit(read_validated_table, lake, name, params.schema) for name in names[:1]]
        predict = load()
        layout: pa.Schema | None = None
        for batch in _read_batches(io, reads, lake, names, params.schema, params.score.batch_rows):
            tables = [table for _, table in batch]
            layout = layout or prediction_schema(tables[0], params.schema, model, run_id)
            scored = score_tables(tables, params.schema, predict, model, run_id, layout)
            if writes:
                writes[-1].result()  # a write that failed stops the run before anything more is written
            writes += [
                io.submit(write_predictions, lake, name, params, predictions, model, run_id, publish)
                for (name, _), predictions in zip(batch, scored, strict=True)
            ]
        return [w.result() for w in writes]


def _read_batches(
    io: ThreadPoolExecutor,
    following: list[Future[pa.Table]],
    lake: Lake,
    names: Sequence[str],
    schema: Schema,
    rows: int,
) -> Iterator[list[tuple[str, pa.Table]]]:
    """Validated partitions in order, grouped until a group holds ``rows`` rows; each read by ``io``
    while the one before is scored (``following``: the first one's read, submitted)."""
    batch: list[tuple[str, pa.Table]] = []
    for i, name in enumerate(names):
        table = following.pop().result()
        following += [io.submit(read_validated_table, lake, n, schema) for n in names[i + 1 : i + 2]]
        batch.append((name, table))
        if sum(t.num_rows for _, t in batch) >= rows or not following:
            yield batch
            batch = []


def run(
    params: Params,
    settings: Settings,
    run_id: str,
    *,
    rescore: bool = False,
    kafka: KafkaEndpoint | None = None,
) -> dict[str, Any]:
    """Score every validated partition not scored yet with the champion; return what was done.

    ``rescore``: also score again the partitions an earlier champion scored. ``kafka``: the brokers
    for ``score.publish_topic`` (default: the environment's).

    Raises:
        NoChampion: nothing is promoted yet.
    """
    lake = Lake(settings.lake_root(params))
    model = champion_model(params, settings)
    todo = manifest.plan(
        manifest.validated_partitions(lake), manifest.scored_manifests(lake), model.version, rescore
    )
    publish = _publisher(params, kafka)
    scored = []
    if todo.score:
        scored = score_partitions(
            lake, todo.score, params, lambda: load_predict(model), model, run_id, publish
        )
    everything = manifest.scored_manifests(lake)
    return {
        "run_id": run_id,
        "model": {**asdict(model), "uri": model.uri},
        "partitions_scored": len(scored),
        "rows_scored": sum(e["rows"] for e in scored),
        "partitions_skipped": len(todo.skipped),
        "partitions_rescored": len(todo.rescored),
        "published": sum(e["published"] or 0 for e in scored) if publish is not None else None,
        "scored_now_by_version": manifest.by_version({e["validated"]: e for e in scored}),
        "scored_by_version": manifest.by_version(everything),
        "predictions": lake.path(manifest.PREDICTIONS),
    }


def _publisher(params: Params, kafka: KafkaEndpoint | None) -> Callable[[pd.DataFrame], int] | None:
    topic = params.score.publish_topic
    if topic is None:
        return None
    from pipelines.ingest import KafkaEndpoint
    from pipelines.scoring.publish import send

    endpoint = kafka or KafkaEndpoint.from_env()
    key = params.schema.key
    return lambda predictions: send(predictions, key, topic, endpoint)


def describe(summary: dict[str, Any]) -> list[str]:
    """A few lines for a task log or a terminal."""
    model = summary["model"]
    lines = [
        f"score {summary['run_id']}: {summary['rows_scored']} events in {summary['partitions_scored']} "
        f"partitions scored by {model['name']} v{model['version']}; {summary['partitions_skipped']} "
        f"partitions already scored"
        + (f", {summary['partitions_rescored']} rescored" if summary["partitions_rescored"] else "")
    ]
    lines.append(
        "scored so far: "
        + (", ".join(f"{v}: {n}" for v, n in summary["scored_by_version"].items()) or "none")
    )
    if summary.get("published") is not None:
        lines.append(f"published: {summary['published']} predictions")
    return lines
