"""Task bodies of ``flywheel_drift``: the drift check, and ``drift_detected`` on a retrain verdict.

Imported inside the task callables, so parsing a DAG file never loads Evidently, MLflow or torch.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from flywheel_provider.hooks.flywheel import FlywheelHook

log = logging.getLogger(__name__)


def check_drift(run_id: str, as_of: datetime | None) -> dict:
    """Run the drift check; skip when there is no champion yet, fail clearly when the inputs are wrong."""
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from pipelines import drift, report
    from pipelines.common.config import ParamsError

    hook = FlywheelHook()
    try:
        params, settings = hook.params(), hook.settings()
        summary = drift.run(params, settings, run_id, as_of=as_of)
    except drift.NoChampion as exc:
        raise AirflowSkipException(f"no drift check: {exc}") from None
    except (ParamsError, drift.ReferenceNotFound, drift.DriftInputError) as exc:  # a retry cannot help
        raise AirflowFailException(str(exc)) from None
    report.write(params, settings, "flywheel_drift", run_id, summary)
    if (summary.get("report") or {}).get("html"):  # the UI's "Evidently drift report" link
        summary["report_artifact"] = "drift/report.html"
    return {
        k: summary.get(k)
        for k in (
            "run_id",
            "window",
            "rows_current",
            "champion",
            "drift_share",
            "drifted_columns",
            "roc_auc",
            "pr_auc",
            "performance",
            "verdict",
            "report",
            "mlflow_run_id",
            "mlflow_experiment_id",
            "report_artifact",
        )
    }


def trigger_retrain(summary: dict, run_id: str, outlet: Any) -> dict:
    """On a retrain verdict, start the cooldown and emit ``drift_detected`` with the evidence; else skip.

    The event's extra names the triggers that fired (``data_drift``, ``critical_column``, ``performance``,
    ``quality_floor``) next to the reasons, the drifted columns and the report.
    """
    from airflow.sdk.exceptions import AirflowSkipException

    from pipelines import drift
    from pipelines.common.lake import Lake

    verdict = summary["verdict"]
    if not verdict["retrain"]:  # no asset event: flywheel_training is not triggered
        raise AirflowSkipException("; ".join(verdict["reasons"]))
    hook = FlywheelHook()
    drift.record_retrain(Lake(hook.settings().lake_root(hook.params())), run_id, datetime.now(UTC), summary)
    extra = {
        "drift_share": summary["drift_share"],
        "drifted_columns": summary["drifted_columns"],
        "report": (summary.get("report") or {}).get("html") or (summary.get("report") or {}).get("summary"),
        "triggers": verdict.get("triggers") or [],
        "reasons": verdict["reasons"],
        "champion": summary["champion"],
        "run_id": run_id,
    }
    outlet.extra = extra
    log.info("drift_detected: %s", extra)
    return extra
