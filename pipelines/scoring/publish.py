"""Predictions to a Kafka topic (``score.publish_topic``): one JSON message per event, keyed by its key.

The brokers and credentials are the ingestion's (:class:`pipelines.ingest.KafkaEndpoint`: the
``flywheel_kafka`` Connection under Airflow, ``FLYWHEEL_KAFKA_*`` otherwise). A partition's predictions
are sent and flushed before its manifest is written, so publishing is at-least-once: a run killed
between the two sends that partition again, under the same keys (consumers keep the last per key).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pandas as pd

from pipelines.common.errors import FlywheelError

if TYPE_CHECKING:
    from pipelines.ingest import KafkaEndpoint


class PublishError(FlywheelError):
    """Predictions could not be sent to the topic; the message names the broker and the topic."""


def messages(predictions: pd.DataFrame, key: str) -> tuple[list[bytes], list[bytes]]:
    """Keys and JSON values of the prediction rows (times as ISO-8601, missing labels as null)."""
    records = json.loads(predictions.to_json(orient="records", date_format="iso", date_unit="us"))
    keys = [str(k).encode() for k in predictions[key]]
    return keys, [json.dumps(r, sort_keys=True).encode() for r in records]


def send(predictions: pd.DataFrame, key: str, topic: str, endpoint: KafkaEndpoint) -> int:
    """Send every prediction to ``topic`` and wait until the broker acknowledged them all; the count."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    keys, values = messages(predictions, key)
    try:
        producer = KafkaProducer(**endpoint.client_config(), acks="all", linger_ms=20)
    except KafkaError as exc:
        raise PublishError(f"{endpoint.describe()} is not reachable ({type(exc).__name__}: {exc})") from None
    try:
        futures = [producer.send(topic, key=k, value=v) for k, v in zip(keys, values, strict=True)]
        producer.flush(timeout=60)
        for future in futures:
            future.get(timeout=60)
    except KafkaError as exc:
        raise PublishError(
            f"{endpoint.describe()} did not take the predictions for topic {topic!r} "
            f"({type(exc).__name__}: {exc}); expected the topic to exist or auto-creation to be on"
        ) from None
    finally:
        producer.close(timeout=10)
    return len(values)
