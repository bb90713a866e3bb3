"""Why a training run ran, from its run type and the asset events it consumed."""

from __future__ import annotations

import pytest

from pipelines.train.trigger import reason, tags


def drift_event(
    run: str, at: str, share: float = 0.57, report: str = "/lake/reports/drift/run=x/report.html"
):
    return {
        "uri": "flywheel://drift_detected",
        "source_dag_id": "flywheel_drift",
        "source_run_id": run,
        "timestamp": at,
        "extra": {
            "drift_share": share,
            "drifted_columns": ["amount", "country"],
            "report": report,
            "reasons": ["critical column amount drifted"],
        },
    }


@pytest.mark.parametrize(
    ("run_type", "kind", "words"),
    [
        ("manual", "manual", "manual trigger"),
        ("scheduled", "schedule", "train.schedule"),
        ("backfill", "backfill", "backfill"),
    ],
)
def test_without_drift_events_the_run_type_says_why(run_type, kind, words):
    why = reason(run_type)
    assert why.kind == kind and words in why.summary
    assert tags(why) == {"flywheel.trigger": kind, "flywheel.trigger.reason": why.summary}


def test_drift_events_win_and_the_latest_names_the_report():
    events = [
        drift_event("r1", "2026-11-20T10:00:00+00:00", report="/old.html"),
        drift_event("r2", "2026-11-21T10:00:00+00:00", share=0.71),
    ]
    why = reason("asset_triggered", events)
    assert why.kind == "drift" and why.details["report"] == "/lake/reports/drift/run=x/report.html"
    assert why.details["source_run_id"] == "r2" and why.details["events"] == 2
    assert "flywheel_drift run r2; critical column amount drifted; report /lake/" in why.summary
    assert (
        "drift share 0.71 (amount, country)"
        in reason(
            "manual",
            [{**events[1], "extra": {"drift_share": 0.71, "drifted_columns": ["amount", "country"]}}],
        ).summary
    )
    written = tags(why)
    assert written["flywheel.trigger"] == "drift"
    assert written["flywheel.trigger.report"] == "/lake/reports/drift/run=x/report.html"
    assert written["flywheel.trigger.drift_share"] == "0.7100"
    assert written["flywheel.trigger.drifted_columns"] == '["amount", "country"]'
    assert written["flywheel.trigger.source"] == "flywheel_drift/r2"


def test_a_manual_run_that_consumed_a_drift_event_is_a_drift_retrain():
    assert reason("manual", [drift_event("r1", "2026-11-21T10:00:00+00:00")]).kind == "drift"


def test_other_asset_events_and_a_sparse_extra():
    why = reason("asset_triggered", [], [{"uri": "s3://bucket/labels", "extra": {}}])
    assert why.kind == "asset" and "s3://bucket/labels" in why.summary
    sparse = reason("asset_triggered", [{"uri": "flywheel://drift_detected", "extra": {}}])
    assert sparse.kind == "drift" and tags(sparse)["flywheel.trigger"] == "drift"
