"""Both Kafka clients are configured alike: offsets committed only explicitly, new groups from the start."""

from __future__ import annotations

import pytest

from pipelines.common.config import KafkaSourceConfig
from pipelines.ingest.endpoints import KafkaEndpoint
from pipelines.ingest.kafka_clients import TopicPartition, kafka_python_config, librdkafka_config


def test_librdkafka_never_commits_or_stores_offsets_on_its_own():
    config = librdkafka_config(KafkaEndpoint("a:1"), KafkaSourceConfig(client="confluent-kafka"))
    assert config["enable.auto.commit"] is False and config["enable.auto.offset.store"] is False
    assert config["auto.offset.reset"] == "earliest" and config["enable.partition.eof"] is True
    assert config["group.id"] == "flywheel-ingest" and "group.instance.id" not in config


@pytest.mark.parametrize(
    ("cfg", "librdkafka", "kafka_python"),
    [
        ({"session_timeout_ms": 6000}, {"session.timeout.ms": 6000}, {"session_timeout_ms": 6000}),
        ({"session_timeout_ms": 6000}, {"heartbeat.interval.ms": 2000}, {"heartbeat_interval_ms": 2000}),
        ({"group_id": "g"}, {"group.id": "g"}, {"group_id": "g"}),
        ({"group_instance_id": "w1"}, {"group.instance.id": "w1"}, {"group_instance_id": "w1"}),
        (
            {"connect_timeout_s": 2},
            {"socket.connection.setup.timeout.ms": 2000},
            {"bootstrap_timeout_ms": 2000},
        ),
    ],
)
def test_the_source_settings_mean_the_same_to_both_clients(cfg, librdkafka, kafka_python):
    endpoint, source = KafkaEndpoint("a:1", {"client_id": "c"}), KafkaSourceConfig(**cfg)
    assert librdkafka.items() <= librdkafka_config(endpoint, source).items()
    assert kafka_python.items() <= kafka_python_config(endpoint, source).items()
    assert (
        librdkafka_config(endpoint, source)["client.id"]
        == "c"
        == kafka_python_config(endpoint, source)["client_id"]
    )
    assert kafka_python_config(endpoint, source)["enable_auto_commit"] is False


def test_a_topic_partition_equals_kafka_pythons_and_reads_as_topic_colon_partition():
    from kafka import TopicPartition as KafkaTopicPartition

    assert TopicPartition("t", 1) == KafkaTopicPartition("t", 1)
    assert str(TopicPartition("t", 1)) == "t:1"
