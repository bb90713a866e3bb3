"""Ingest: land new records of the sources (files, Kafka, S3); quarantine malformed ones with a reason."""

from pipelines.ingest.endpoints import KafkaEndpoint, S3Endpoint, SourceUnavailable
from pipelines.ingest.files import IngestError
from pipelines.ingest.stage import run

__all__ = ["run", "IngestError", "KafkaEndpoint", "S3Endpoint", "SourceUnavailable"]
