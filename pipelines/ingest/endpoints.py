"""Where the sources' services are: Kafka brokers and the S3 API, from the environment.

Endpoints and credentials never come from ``params.yaml``. Under Airflow the
hooks in ``plugins/flywheel_provider/hooks/`` build these from Connections
(``flywheel_kafka``, ``flywheel_s3``) and fall back to the same variables:

- ``FLYWHEEL_KAFKA_BOOTSTRAP``: ``host:port[,host:port...]`` (default ``127.0.0.1:9092``, the broker of
  ``flywheel services up``); ``FLYWHEEL_KAFKA_SECURITY_PROTOCOL``, ``FLYWHEEL_KAFKA_SASL_MECHANISM``,
  ``FLYWHEEL_KAFKA_SASL_USERNAME``, ``FLYWHEEL_KAFKA_SASL_PASSWORD`` for a secured cluster.
- ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (unset: AWS itself), ``AWS_ACCESS_KEY_ID``,
  ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_DEFAULT_REGION`` / ``AWS_REGION``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipelines.ingest.landing import IngestError

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
KAFKA_OPTION_ENV = {
    "security_protocol": "FLYWHEEL_KAFKA_SECURITY_PROTOCOL",
    "sasl_mechanism": "FLYWHEEL_KAFKA_SASL_MECHANISM",
    "sasl_plain_username": "FLYWHEEL_KAFKA_SASL_USERNAME",
    "sasl_plain_password": "FLYWHEEL_KAFKA_SASL_PASSWORD",
}
KAFKA_OPTIONS = frozenset(
    {
        *KAFKA_OPTION_ENV,
        "ssl_cafile",
        "ssl_certfile",
        "ssl_keyfile",
        "ssl_check_hostname",
        "sasl_kerberos_service_name",
        "client_id",
    }
)
# kafka-python's option names (the Connection's extra) -> librdkafka's (confluent-kafka)
LIBRDKAFKA_OPTIONS = {
    "security_protocol": "security.protocol",
    "sasl_mechanism": "sasl.mechanism",
    "sasl_plain_username": "sasl.username",
    "sasl_plain_password": "sasl.password",
    "ssl_cafile": "ssl.ca.location",
    "ssl_certfile": "ssl.certificate.location",
    "ssl_keyfile": "ssl.key.location",
    "sasl_kerberos_service_name": "sasl.kerberos.service.name",
    "client_id": "client.id",
}


class SourceUnavailable(IngestError):
    """A source's service (a Kafka broker, the S3 API) cannot be reached; the message names the endpoint."""


@dataclass(frozen=True)
class KafkaEndpoint:
    """The brokers to bootstrap from and the client's security settings."""

    bootstrap_servers: str = DEFAULT_BOOTSTRAP
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.servers or any(":" not in s for s in self.servers):
            raise IngestError(
                f"Kafka bootstrap servers {self.bootstrap_servers!r}: expected host:port[,host:port...]"
            )
        unknown = sorted(set(self.options) - KAFKA_OPTIONS)
        if unknown:
            raise IngestError(
                f"Kafka client options {unknown} are not supported; expected some of {sorted(KAFKA_OPTIONS)}"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> KafkaEndpoint:
        """``FLYWHEEL_KAFKA_BOOTSTRAP`` and the optional security variables."""
        env = os.environ if env is None else env
        options = {key: env[name] for key, name in KAFKA_OPTION_ENV.items() if env.get(name)}
        return cls(env.get("FLYWHEEL_KAFKA_BOOTSTRAP") or DEFAULT_BOOTSTRAP, options)

    @property
    def servers(self) -> list[str]:
        """The ``host:port`` of each bootstrap server."""
        return [s.strip() for s in self.bootstrap_servers.split(",") if s.strip()]

    def describe(self) -> str:
        """How an error names the broker: ``Kafka broker at 127.0.0.1:9092``."""
        return f"Kafka broker at {','.join(self.servers)}"

    def client_config(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python's clients."""
        return {"bootstrap_servers": self.servers, **self.options}

    def librdkafka_config(self) -> dict[str, Any]:
        """The same brokers and security settings in librdkafka's names (confluent-kafka's clients).

        ``ssl_check_hostname`` becomes ``ssl.endpoint.identification.algorithm`` (``https`` or ``none``).
        """
        config: dict[str, Any] = {"bootstrap.servers": ",".join(self.servers)}
        for key, value in self.options.items():
            if key == "ssl_check_hostname":
                check = str(value).strip().lower() not in ("false", "0", "no", "off", "")
                config["ssl.endpoint.identification.algorithm"] = "https" if check else "none"
            else:
                config[LIBRDKAFKA_OPTIONS[key]] = value
        return config


@dataclass(frozen=True)
class S3Endpoint:
    """The S3 API and credentials (all optional: botocore's own lookup fills what is not given)."""

    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    region: str | None = None
    connect_timeout_s: float = 5.0
    max_attempts: int = 3

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> S3Endpoint:
        """The standard ``AWS_*`` variables (``AWS_ENDPOINT_URL_S3`` before ``AWS_ENDPOINT_URL``)."""
        env = os.environ if env is None else env
        return cls(
            endpoint_url=env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None,
            access_key_id=env.get("AWS_ACCESS_KEY_ID") or None,
            secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
            session_token=env.get("AWS_SESSION_TOKEN") or None,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
        )

    def describe(self) -> str:
        """How an error names the endpoint: ``S3 endpoint http://127.0.0.1:9000``."""
        return f"S3 endpoint {self.endpoint_url or '(AWS default)'}"

    def storage_options(self) -> dict[str, Any]:
        """Keyword arguments for ``s3fs.S3FileSystem`` (fsspec's ``s3://``), with bounded retries."""
        options: dict[str, Any] = {
            "skip_instance_cache": True,
            "config_kwargs": {
                "connect_timeout": self.connect_timeout_s,
                "read_timeout": 60,
                "retries": {"max_attempts": self.max_attempts, "mode": "standard"},
            },
        }
        if self.endpoint_url:
            options["endpoint_url"] = self.endpoint_url
        if self.access_key_id:
            options["key"] = self.access_key_id
        if self.secret_access_key:
            options["secret"] = self.secret_access_key
        if self.session_token:
            options["token"] = self.session_token
        if self.region:  # in botocore's Config, not client_kwargs: s3fs would send it as a bucket location
            options["config_kwargs"]["region_name"] = self.region
        return options

    def filesystem(self) -> AbstractFileSystem:
        """An ``s3fs`` filesystem on this endpoint (s3fs's own retries bounded like botocore's)."""
        import fsspec

        fs = fsspec.filesystem("s3", **self.storage_options())
        fs.retries = self.max_attempts
        return fs
