"""Ingestion sources: files (:mod:`pipelines.ingest.files`), Kafka (:mod:`.kafka`) and S3 (:mod:`.s3`).

:func:`run` lands one run from each configured source (``ingest.sources`` in params, or the
``sources`` given) and sums their counts; every source keeps ``consumed == landed + quarantined``
and writes its own partitions (``landing/source=<name>/run=<run>``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from pipelines.common.config import Params, SourceName
from pipelines.common.settings import Settings
from pipelines.ingest.endpoints import KafkaEndpoint, S3Endpoint
from pipelines.ingest.landing import IngestError


def run(
    params: Params,
    settings: Settings,
    run_id: str,
    sources: Sequence[SourceName] | None = None,
    path: str | None = None,
    kafka: KafkaEndpoint | None = None,
    s3: S3Endpoint | None = None,
) -> dict[str, Any]:
    """One ingest run over the sources (default ``ingest.sources``), one after the other.

    Args:
        params: the loaded params.
        settings: where the lake and the project are.
        run_id: the run's id, shared by every source's partitions.
        sources: which sources to read (default: ``params.ingest.sources``).
        path: the files source's folder or URL (default ``ingest.files.path``).
        kafka, s3: the endpoints (default: from the environment).

    Returns:
        ``consumed``, ``landed``, ``quarantined`` and ``reasons`` summed over the sources, the
        partitions written, and ``by_source`` with each source's own summary. With one source, that
        source's summary keys are at the top level too.
    """
    names = list(sources or params.ingest.sources)
    unknown = sorted(set(names) - {"files", "kafka", "s3"})
    if unknown:
        raise IngestError(f"unknown source(s) {unknown}; expected some of ['files', 'kafka', 's3']")
    by_source: dict[str, dict[str, Any]] = {
        name: _run_one(name, params, settings, run_id, path, kafka, s3) for name in names
    }
    return combine(run_id, by_source)


def _run_one(
    name: str,
    params: Params,
    settings: Settings,
    run_id: str,
    path: str | None,
    kafka: KafkaEndpoint | None,
    s3: S3Endpoint | None,
) -> dict[str, Any]:
    """One source's run; a source's module (and its client library) is imported only when it runs."""
    if name == "kafka":
        from pipelines.ingest import kafka as kafka_source

        return kafka_source.run(params, settings, run_id, kafka)
    if name == "s3":
        from pipelines.ingest import s3 as s3_source

        return s3_source.run(params, settings, run_id, s3)
    from pipelines.ingest import files as files_source

    return files_source.run(params, settings, run_id=run_id, path=path)


def combine(run_id: str, by_source: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The run's summary: counts summed over the sources, and each source's summary."""
    reasons: Counter[str] = Counter()
    for summary in by_source.values():
        reasons.update(summary.get("reasons", {}))
    single = next(iter(by_source.values())) if len(by_source) == 1 else {}
    return {
        **single,
        "run_id": run_id,
        "sources": list(by_source),
        "consumed": sum(s["consumed"] for s in by_source.values()),
        "landed": sum(s["landed"] for s in by_source.values()),
        "quarantined": sum(s["quarantined"] for s in by_source.values()),
        "reasons": dict(sorted(reasons.items())),
        "landing_partitions": [
            s["landing_partition"] for s in by_source.values() if s.get("landing_partition")
        ],
        "by_source": by_source,
    }
