"""Ingest: land new records of the sources (files, Kafka, S3); quarantine malformed ones with a reason.

Public besides :func:`run`: :mod:`~pipelines.ingest.formats` and :func:`list_files`, which the backtest uses
to read a labelled history with the same decoding and row rules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.common.exports import lazy_exports

if TYPE_CHECKING:
    from pipelines.ingest import formats
    from pipelines.ingest.endpoints import KafkaEndpoint, S3Endpoint, SourceUnavailable
    from pipelines.ingest.files import list_files
    from pipelines.ingest.landing import IngestError
    from pipelines.ingest.stage import run

_API = {
    "run": "stage",
    "IngestError": "landing",
    "KafkaEndpoint": "endpoints",
    "S3Endpoint": "endpoints",
    "SourceUnavailable": "endpoints",
    "formats": "formats",
    "list_files": "files",
}
__all__ = ["IngestError", "KafkaEndpoint", "S3Endpoint", "SourceUnavailable", "formats", "list_files", "run"]
__getattr__ = lazy_exports(__name__, _API)
