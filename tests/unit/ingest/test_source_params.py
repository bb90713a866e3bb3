"""The ingest section's sources, Kafka and S3 settings: valid values load, invalid ones name the key."""

from __future__ import annotations

import pytest

from pipelines.common.config import IngestConfig, ParamsError, parse_params, read_params_dict


def with_ingest(repo_root, **ingest):
    data = read_params_dict(repo_root / "params.yaml")
    data["ingest"] = {k: v for k, v in data["ingest"].items() if k != "sources"} | ingest
    return data


def test_the_default_reads_files_and_the_old_single_source_key_still_works():
    assert IngestConfig().sources == ("files",)
    assert IngestConfig.model_validate({"source": "kafka"}).sources == ("kafka",)
    assert IngestConfig.model_validate({"sources": ["kafka", "s3", "files"]}).sources == (
        "kafka",
        "s3",
        "files",
    )


@pytest.mark.parametrize(
    ("ingest", "message"),
    [
        ({"sources": ["kafka", "kafka"]}, "sources must not repeat"),
        ({"sources": ["ftp"]}, "ingest.sources[0] = 'ftp'"),
        ({"sources": []}, "ingest.sources"),
        ({"source": "kafka", "sources": ["files"]}, "give 'sources' only"),
        ({"kafka": {"topics": ["bad topic"]}}, "Kafka topic names"),
        ({"kafka": {"session_timeout_ms": 10}}, "ingest.kafka.session_timeout_ms = 10"),
        ({"kafka": {"workers": 17}}, "ingest.kafka.workers = 17"),
        ({"kafka": {"readers": 0}}, "ingest.kafka.readers = 0"),
        (
            {"kafka": {"readers": 2, "max_records": 1000}},
            "expected readers: 1 when max_records .1000. or max_seconds .None. bounds a run; readers = 2",
        ),
        (
            {"kafka": {"client": "confluent"}},
            "ingest.kafka.client = 'confluent': expected one of ['kafka-python', 'confluent-kafka']",
        ),
        ({"kafka": {"client": None}}, "ingest.kafka.client = None: expected one of"),
        ({"kafka": {"bootstrap_servers": "h:9092"}}, "unknown key"),  # endpoints never come from params
        ({"s3": {"url": "http://bucket/x"}}, "ingest.s3.url = 'http://bucket/x'"),
    ],
)
def test_invalid_source_settings_fail_naming_the_key(repo_root, ingest, message):
    with pytest.raises(ParamsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_params(with_ingest(repo_root, **ingest), source="params.yaml")


def test_kafka_python_is_the_default_client_and_confluent_kafka_can_be_chosen(repo_root):
    assert parse_params(with_ingest(repo_root)).ingest.kafka.client == "kafka-python"
    chosen = parse_params(with_ingest(repo_root, kafka={"client": "confluent-kafka"}))
    assert chosen.ingest.kafka.client == "confluent-kafka"
