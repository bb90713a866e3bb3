"""Task bodies of ``flywheel_ingest``: land the sources, then the validation gate and the asset event.

Imported inside the task callables, so parsing a DAG file never loads pandas, GX or kafka-python.
"""

from __future__ import annotations

from typing import Any

from flywheel_provider.hooks.flywheel import FlywheelHook


def ingest_sources(run_id: str, sources: list[str] | None = None) -> dict:
    """Land one run from each source: the run's ``sources`` param, else ``ingest.sources`` in params.

    Endpoints come from the ``flywheel_kafka`` / ``flywheel_s3`` Connections, else the environment. An
    unreachable broker or S3 API raises naming it; the task's retries (with backoff) try again.
    """
    from flywheel_provider.hooks.kafka_ingest import KafkaIngestHook
    from flywheel_provider.hooks.s3_ingest import S3IngestHook
    from pipelines import ingest

    hook = FlywheelHook()
    params = hook.params()
    names = list(sources or params.ingest.sources)
    kafka = KafkaIngestHook().endpoint() if "kafka" in names else None
    s3 = S3IngestHook().endpoint() if "s3" in names else None
    return ingest.run(params, hook.settings(), run_id=run_id, sources=names, kafka=kafka, s3=s3)


def validate_and_publish(landed: dict, run_id: str, outlet: Any) -> dict:
    """Run the gate; publish ``validated_events`` with the counts, or fail naming what was rejected."""
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from pipelines import report, validate

    hook = FlywheelHook()
    settings = hook.settings()
    params = hook.params()
    summary = validate.run(params, settings)
    summary |= validate.log_data_docs(params, settings, summary, run_id)  # the UI's "GX Data Docs" link
    report.write(params, settings, "flywheel_ingest", run_id, {"ingest": landed, "validate": summary})
    if summary["verdict"] == "nothing_to_validate":  # no new data: no asset event, nothing downstream
        raise AirflowSkipException("no new landed batches to validate")
    if summary["verdict"] == "pass" and not summary["validated_rows"]:  # only copies of validated events
        raise AirflowSkipException("no new events: every landed row was already in the validated tier")
    outlet.extra = {
        "landed": landed.get("landed", 0),
        "quarantined": landed.get("quarantined", 0),
        "validated_rows": summary["validated_rows"],
        "verdict": summary["verdict"],
    }
    if summary["verdict"] == "fail":
        raise AirflowFailException(validate.describe_rejections(summary))
    return summary
