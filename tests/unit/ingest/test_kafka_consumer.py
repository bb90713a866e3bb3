"""The Kafka consumer's own process: lean, and its failures are the run's."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from pipelines.common.config import KafkaSourceConfig
from pipelines.ingest.endpoints import KafkaEndpoint, SourceUnavailable
from pipelines.ingest.kafka_consumer import ConsumerProcess


def test_the_consumer_process_imports_neither_pandas_nor_pyarrow():
    """What it imports is what it holds in memory for the whole drain, beside the run's process."""
    code = (
        "import sys; import kafka, confluent_kafka; from pipelines.ingest import kafka_consumer; "
        "print(sorted(m for m in ('numpy', 'pandas', 'pyarrow', 'fsspec') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("client", ["kafka-python", "confluent-kafka"])
def test_a_broker_the_consumer_process_cannot_reach_fails_the_run_naming_it(client):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    cfg = KafkaSourceConfig(client=client, connect_timeout_s=1)

    with pytest.raises(SourceUnavailable, match=address), ConsumerProcess(KafkaEndpoint(address), cfg):
        pytest.fail("connected to a broker that does not exist")
