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
from collections.abc import Callable
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
    missing = [c for c in (schema.key, schema.event_time, *schema.feature_names) if c not in frame.columns]
    if missing:
        raise ScoreError(f"validated rows lack column(s) {missing}; expected the schema's columns")
    out = predict(frame[list(schema.feature_names)])
    if len(out) != len(frame):
        raise ScoreError(f"the model {model.uri} returned {len(out)} predictions for {len(frame)} rows")
    label = frame[schema.target] if schema.target in frame.columns else pd.Series(pd.NA, index=frame.index)
    return pd.DataFrame(
        {
            # ``.array``, not ``.to_numpy()``: a zone-aware event time would become one object per row
            schema.key: frame[schema.key].astype("string").array,
            schema.event_time: frame[schema.event_time].array,
            SCORE: np.asarray(out["probability"], dtype="float64"),
            PREDICTION: np.asarray(out["label"], dtype="int8"),
            schema.target: pd.array(label.to_numpy(), dtype="Int8"),
            "model_name": model.name,
            "model_version": model.version,
            "model_run_id": model.run_id,
            "scoring_run_id": run_id,
        }
    )


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
    table = lake.read_partition_table(manifest.partition_path(lake, name, manifest.VALIDATED))
    wanted = (schema.key, schema.event_time, *schema.feature_names, schema.target)
    return table.select([c for c in dict.fromkeys(wanted) if c in table.column_names]).to_pandas()


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
    frame = read_validated(lake, name, params.schema)
    predictions = score_frame(frame, params.schema, predict, model, run_id)
    target = manifest.partition_path(lake, name)
    lake.reset_partition(target)  # a partition written without its manifest, or one being rescored
    lake.write_table(f"{target}/{PART}", pa.Table.from_pandas(predictions, preserve_index=False))
    published = publish(predictions) if publish is not None else None
    entry = {
        "validated": f"{manifest.VALIDATED}/{name}",
        "rows": len(predictions),
        "labelled": int(predictions[params.schema.target].notna().sum()),
        "model_name": model.name,
        "model_version": model.version,
        "model_run_id": model.run_id,
        "scoring_run_id": run_id,
        "published": published,
        "topic": params.score.publish_topic if publish is not None else None,
        "written_at": datetime.now(UTC).isoformat(),
    }
    lake.write_json(f"{target}/{MANIFEST}", entry)
    log.info("score: %s: %d rows by %s", name, len(predictions), model.uri)
    return entry


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
        predict = load_predict(model)
        scored = [score_partition(lake, name, params, predict, model, run_id, publish) for name in todo.score]
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
