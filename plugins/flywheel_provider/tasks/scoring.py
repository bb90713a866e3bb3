"""Task bodies of ``flywheel_scoring``: score new validated events with the champion, then measure it live.

Imported inside the task callables, so parsing a DAG file never loads MLflow or torch.
"""

from __future__ import annotations

import logging

from flywheel_provider.hooks.flywheel import FlywheelHook

log = logging.getLogger(__name__)


def score_events(run_id: str) -> dict:
    """Score what is new; skip while there is no champion, fail without retries on bad parameters."""
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from pipelines import scoring
    from pipelines.common.config import ParamsError

    hook = FlywheelHook()
    try:
        params, settings = hook.params(), hook.settings()
        kafka = None
        if params.score.publish_topic:
            from flywheel_provider.hooks.kafka_ingest import KafkaIngestHook

            kafka = KafkaIngestHook().endpoint()
        summary = scoring.run(params, settings, run_id, kafka=kafka)
    except scoring.NoChampion as exc:
        raise AirflowSkipException(f"nothing scored: {exc}") from None
    except ParamsError as exc:  # a retry cannot help
        raise AirflowFailException(str(exc)) from None
    for line in scoring.describe(summary):
        log.info("%s", line)
    return summary


def measure_live(scored: dict, run_id: str) -> dict:
    """The champion's live metric per day; the run report holds both steps."""
    from airflow.sdk.exceptions import AirflowSkipException

    from pipelines import report, scoring

    hook = FlywheelHook()
    params, settings = hook.params(), hook.settings()
    if params.schema.task != "binary":
        report.write(params, settings, "flywheel_scoring", run_id, {"score": scored})
        raise AirflowSkipException(
            f"live performance is measured for binary models; schema.task is {params.schema.task}"
        )
    performance = scoring.measure(params, settings, run_id)
    report.write(params, settings, "flywheel_scoring", run_id, {"score": scored, "performance": performance})
    return {"days": len(performance["days"]), "report": performance["report"]}
