"""Endpoints and credentials come from the environment (or Connections), with clear errors."""

from __future__ import annotations

import pytest

from pipelines.ingest.endpoints import DEFAULT_BOOTSTRAP, KAFKA_OPTIONS, KafkaEndpoint, S3Endpoint
from pipelines.ingest.landing import IngestError


def test_kafka_defaults_to_the_local_broker_and_reads_security_settings():
    assert KafkaEndpoint.from_env({}).bootstrap_servers == DEFAULT_BOOTSTRAP
    endpoint = KafkaEndpoint.from_env(
        {
            "FLYWHEEL_KAFKA_BOOTSTRAP": "a:9092, b:9093",
            "FLYWHEEL_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "FLYWHEEL_KAFKA_SASL_USERNAME": "u",
        }
    )
    assert endpoint.servers == ["a:9092", "b:9093"]
    assert endpoint.client_config() == {
        "bootstrap_servers": ["a:9092", "b:9093"],
        "security_protocol": "SASL_SSL",
        "sasl_plain_username": "u",
    }
    assert endpoint.describe() == "Kafka broker at a:9092,b:9093"


@pytest.mark.parametrize("servers", ["", "localhost", "a:1,b"])
def test_a_bootstrap_without_ports_is_refused(servers):
    with pytest.raises(IngestError, match="expected host:port"):
        KafkaEndpoint(servers)


def test_unknown_kafka_options_are_refused():
    with pytest.raises(IngestError, match="not supported"):
        KafkaEndpoint("a:1", {"acks": "all"})


@pytest.mark.parametrize(
    ("option", "value", "librdkafka"),
    [
        ("security_protocol", "SASL_SSL", {"security.protocol": "SASL_SSL"}),
        ("sasl_mechanism", "SCRAM-SHA-512", {"sasl.mechanism": "SCRAM-SHA-512"}),
        ("sasl_plain_username", "u", {"sasl.username": "u"}),
        ("sasl_plain_password", "p", {"sasl.password": "p"}),
        ("ssl_cafile", "/ca.pem", {"ssl.ca.location": "/ca.pem"}),
        ("ssl_certfile", "/c.pem", {"ssl.certificate.location": "/c.pem"}),
        ("ssl_keyfile", "/k.pem", {"ssl.key.location": "/k.pem"}),
        ("sasl_kerberos_service_name", "kafka", {"sasl.kerberos.service.name": "kafka"}),
        ("client_id", "ingest-7", {"client.id": "ingest-7"}),
        ("ssl_check_hostname", True, {"ssl.endpoint.identification.algorithm": "https"}),
        ("ssl_check_hostname", False, {"ssl.endpoint.identification.algorithm": "none"}),
        ("ssl_check_hostname", "false", {"ssl.endpoint.identification.algorithm": "none"}),
    ],
)
def test_the_same_settings_reach_librdkafka_under_its_names(option, value, librdkafka):
    endpoint = KafkaEndpoint("a:9092, b:9093", {option: value})
    assert endpoint.librdkafka_config() == {"bootstrap.servers": "a:9092,b:9093", **librdkafka}


def test_every_supported_kafka_option_has_a_librdkafka_name():
    endpoint = KafkaEndpoint("a:1", {option: "x" for option in KAFKA_OPTIONS})
    assert len(endpoint.librdkafka_config()) == 1 + len(KAFKA_OPTIONS)


def test_s3_reads_the_standard_aws_variables():
    env = {
        "AWS_ENDPOINT_URL": "http://generic:1",
        "AWS_ENDPOINT_URL_S3": "http://s3:9000",
        "AWS_ACCESS_KEY_ID": "id",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    endpoint = S3Endpoint.from_env(env)
    options = endpoint.storage_options()
    assert (
        options["endpoint_url"] == "http://s3:9000"
        and options["key"] == "id"
        and options["secret"] == "secret"
    )
    assert options["config_kwargs"]["region_name"] == "eu-west-1" and "client_kwargs" not in options
    assert "secret" not in repr(endpoint)
    assert endpoint.describe() == "S3 endpoint http://s3:9000"
    assert S3Endpoint.from_env({}).describe() == "S3 endpoint (AWS default)"


def test_endpoints_and_the_kafka_clients_import_without_pandas_or_pyarrow():
    """The Airflow hooks' connection tests import them: that costs the client, not 100 MB of dataframes."""
    import subprocess
    import sys

    code = (
        "import sys; import pipelines.ingest.endpoints, pipelines.ingest.kafka_clients; "
        "print(sorted(m for m in ('numpy', 'pandas', 'pyarrow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
