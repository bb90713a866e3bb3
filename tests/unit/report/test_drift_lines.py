"""The summary shows the drift check, why the last training ran, and the old and new model side by side."""

from __future__ import annotations

from pipelines.common.config import load_params
from pipelines.common.settings import Settings
from pipelines.report import summary as report
from tests.support.install import ROOT

PARAMS = load_params(ROOT / "params.yaml")  # storage.root: null, the lake under the home


def test_summary_shows_the_drift_the_reason_and_both_models(tmp_path):
    settings = Settings.from_env({"FLYWHEEL_HOME": str(tmp_path)})
    report.write(
        PARAMS,
        settings,
        "flywheel_drift",
        "drift-run",
        {
            "window": {"start": "2026-11-21T00:00:00+00:00", "end": "2026-11-22T00:00:00+00:00"},
            "rows_current": 9000,
            "champion": "models:/card-fraud/1",
            "drift_share": 0.57,
            "drifted_columns": ["amount", "country"],
            "roc_auc": 0.62,
            "pr_auc": 0.08,
            "verdict": {"retrain": True, "reasons": ["critical column amount drifted"]},
            "report": {"html": "/lake/reports/drift/run=drift-run/report.html"},
        },
    )
    report.write(
        PARAMS,
        settings,
        "flywheel_training",
        "train-run",
        {
            "trigger": "drift",
            "stages": {"train": "ran"},
            "metrics": {},
            "trigger_reason": {
                "kind": "drift",
                "summary": "drift detected by flywheel_drift run drift-run",
                "details": {},
            },
            "promotion": {
                "promoted": True,
                "reason": "better",
                "version": "2",
                "previous_champion": "1",
                "test_rows": 1500,
                "candidate": {"roc_auc": 0.8, "pr_auc": 0.3},
                "champion_scores": {"roc_auc": 0.6, "pr_auc": 0.1},
            },
        },
    )
    summary = {
        "ingest": None,
        "training": report.latest(PARAMS, settings, "flywheel_training"),
        "drift": report.latest(PARAMS, settings, "flywheel_drift"),
        "champion": None,
    }
    text = report.render(summary, settings)
    assert "Drift:      run drift-run: 9000 rows [2026-11-21, 2026-11-22) vs models:/card-fraud/1's" in text
    assert "drift share 0.57 (amount, country)" in text and "ROC-AUC 0.6200, PR-AUC 0.0800" in text
    assert "verdict: retrain: critical column amount drifted" in text
    assert "report: /lake/reports/drift/run=drift-run/report.html" in text
    assert "Why:        drift: drift detected by flywheel_drift run drift-run" in text
    assert "v1 (champion before) roc_auc 0.6000, pr_auc 0.1000" in text
    assert "v2 (candidate, promoted) roc_auc 0.8000, pr_auc 0.3000" in text


def test_summary_without_a_drift_check(tmp_path):
    text = report.render(
        {"ingest": None, "training": None, "drift": None, "champion": None},
        Settings.from_env({"FLYWHEEL_HOME": str(tmp_path)}),
    )
    assert "Drift:      no check yet" in text
