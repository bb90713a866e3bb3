"""Ingest: land new records of the sources (files, Kafka, S3); quarantine malformed ones with a reason."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.common.exports import lazy_exports

if TYPE_CHECKING:
    from pipelines.ingest.endpoints import KafkaEndpoint, S3Endpoint, SourceUnavailable
    from pipelines.ingest.landing import IngestError
    from pipelines.ingest.stage import run

_API = {
    "run": "stage",
    "IngestError": "landing",
    "KafkaEndpoint": "endpoints",
    "S3Endpoint": "endpoints",
    "SourceUnavailable": "endpoints",
}
__all__ = ["IngestError", "KafkaEndpoint", "S3Endpoint", "SourceUnavailable", "run"]
__getattr__ = lazy_exports(__name__, _API)
