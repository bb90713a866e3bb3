"""Put demo events where the sources read them: a Kafka topic (one message per event) or an S3 prefix.

``flywheel produce --to kafka --topic T`` and ``--to s3 --out s3://bucket/prefix`` call these; the
folder target stays :func:`pipelines.demo.generator.produce`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pipelines.demo import generator as produce
from pipelines.ingest import KafkaEndpoint, S3Endpoint, SourceUnavailable

log = logging.getLogger(__name__)

DEFAULT_PARTITIONS = 3


def ensure_topic(topic: str, endpoint: KafkaEndpoint, partitions: int = DEFAULT_PARTITIONS) -> bool:
    """Create ``topic`` unless it exists (replication 1 suits a local broker); whether it was created."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    try:
        admin = KafkaAdminClient(**endpoint.client_config(), bootstrap_timeout_ms=10_000)
    except KafkaError as exc:
        raise SourceUnavailable(
            f"{endpoint.describe()} is not reachable ({type(exc).__name__}: {exc})"
        ) from None
    try:
        if topic in admin.list_topics():
            return False
        admin.create_topics([NewTopic(topic, partitions, 1)])
        return True
    except TopicAlreadyExistsError:
        return False
    finally:
        admin.close()


def send(
    topic: str,
    keys: Sequence[bytes | None],
    values: Sequence[bytes | None],
    endpoint: KafkaEndpoint,
    partitions: int = DEFAULT_PARTITIONS,
) -> dict[str, Any]:
    """Send messages (values are raw bytes, malformed or not) and wait until the broker has them all.

    Raises:
        SourceUnavailable: the broker is unreachable or refused a message (the message names it).
    """
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    created = ensure_topic(topic, endpoint, partitions)
    try:
        producer = KafkaProducer(
            **endpoint.client_config(),
            acks="all",
            linger_ms=20,
            batch_size=512 * 1024,
            max_request_size=4 * 1024 * 1024,
            bootstrap_timeout_ms=10_000,
        )
    except KafkaError as exc:
        raise SourceUnavailable(
            f"{endpoint.describe()} is not reachable ({type(exc).__name__}: {exc})"
        ) from None
    try:
        futures = [producer.send(topic, key=k, value=v) for k, v in zip(keys, values, strict=True)]
        producer.flush(timeout=120)
        failed = [f.exception for f in futures if f.failed()]
        if failed or not all(f.is_done for f in futures):
            raise SourceUnavailable(
                f"{endpoint.describe()}: {len(failed)} of {len(futures)} messages to "
                f"{topic!r} were not acknowledged (first error: {failed[:1]})"
            )
    finally:
        producer.close(timeout=10)
    log.info("produced %s messages to %s on %s", len(values), topic, endpoint.describe())
    return {
        "topic": topic,
        "bootstrap": endpoint.bootstrap_servers,
        "messages": len(values),
        "topic_created": created,
    }


def to_kafka(
    topic: str, endpoint: KafkaEndpoint | None = None, partitions: int = DEFAULT_PARTITIONS, **demo: Any
) -> dict[str, Any]:
    """Demo events as messages on ``topic``.

    See :func:`pipelines.demo.generator.messages` for ``demo``'s keys.
    """
    endpoint = endpoint or KafkaEndpoint.from_env()
    keys, values, summary = produce.messages(**demo)
    return {**summary, **send(topic, keys, values, endpoint, partitions), "to": "kafka"}


def task_to_kafka(
    topic: str,
    task: str,
    endpoint: KafkaEndpoint | None = None,
    partitions: int = DEFAULT_PARTITIONS,
    **demo: Any,
) -> dict[str, Any]:
    """The ``task`` demo (``regression`` or ``multiclass``, :mod:`pipelines.demo.variants`) on ``topic``."""
    from pipelines.demo import variants

    endpoint = endpoint or KafkaEndpoint.from_env()
    keys, values, summary = variants.task_messages(task, **demo)
    return {**summary, **send(topic, keys, values, endpoint, partitions), "to": "kafka"}


def to_s3(url: str, endpoint: S3Endpoint | None = None, **demo: Any) -> dict[str, Any]:
    """Demo event files (see :func:`pipelines.demo.generator.produce`) under an ``s3://bucket/prefix`` URL."""
    endpoint = endpoint or S3Endpoint.from_env()
    if not url.startswith("s3://"):
        raise ValueError(f"--out {url!r}: expected an s3://bucket/prefix URL for --to s3")
    try:
        summary = produce.produce(url, storage_options=endpoint.storage_options(), **demo)
    except (OSError, ConnectionError) as exc:
        raise SourceUnavailable(
            f"{endpoint.describe()}: writing {url} failed ({type(exc).__name__}: {exc})"
        ) from None
    return {**summary, "to": "s3", "endpoint": endpoint.endpoint_url}
