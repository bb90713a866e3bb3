"""KafkaIngestHook: the brokers Flywheel's Kafka source reads, by Connection id."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from pipelines.ingest.endpoints import KafkaEndpoint

log = logging.getLogger(__name__)


class KafkaIngestHook(BaseHook):
    """The Kafka endpoint of the Connection ``kafka_conn_id`` (default ``flywheel_kafka``).

    The Connection's ``host``/``port`` (or ``extra.bootstrap_servers``, ``"h1:9092,h2:9092"``) are the
    brokers; ``login``/``password`` the SASL user; ``extra`` may set ``security_protocol``,
    ``sasl_mechanism`` and ``ssl_*`` files. Without the Connection, ``FLYWHEEL_KAFKA_BOOTSTRAP``
    (default ``127.0.0.1:9092``, the broker of ``flywheel services up``) and the other
    ``FLYWHEEL_KAFKA_*`` variables are used.
    """

    conn_name_attr = "kafka_conn_id"
    default_conn_name = "flywheel_kafka"
    conn_type = "generic"
    hook_name = "Kafka (Flywheel ingestion)"

    def __init__(self, kafka_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.kafka_conn_id = kafka_conn_id

    def endpoint(self) -> KafkaEndpoint:
        from pipelines.ingest.endpoints import KAFKA_OPTIONS, KafkaEndpoint

        env = KafkaEndpoint.from_env()
        try:
            conn = self.get_connection(self.kafka_conn_id)
        except Exception:  # no such Connection: the environment decides
            log.info(
                "no Connection %r; Kafka brokers from the environment: %s",
                self.kafka_conn_id,
                env.bootstrap_servers,
            )
            return env
        extra = conn.extra_dejson
        servers = extra.get("bootstrap_servers") or (
            f"{conn.host}:{conn.port or 9092}" if conn.host else None
        )
        options = {k: v for k, v in extra.items() if k in KAFKA_OPTIONS}
        if conn.login:
            options.setdefault("sasl_plain_username", conn.login)
        if conn.password:
            options.setdefault("sasl_plain_password", conn.password)
        return KafkaEndpoint(servers or env.bootstrap_servers, options or dict(env.options))
