"""The summary says how many events the last scoring run scored, by which version, and the live metric."""

from __future__ import annotations

from pipelines.common.config import load_params
from pipelines.common.settings import Settings
from pipelines.report import summary as report
from tests.support.install import ROOT

PARAMS = load_params(ROOT / "params.yaml")  # storage.root: null, the lake under the home


def test_scoring_lines_name_the_versions_and_the_live_metric(tmp_path):
    settings = Settings.from_env({"FLYWHEEL_HOME": str(tmp_path)})
    scored = {
        "model": {"name": "card-fraud", "version": "2"},
        "rows_scored": 3000,
        "partitions_scored": 1,
        "partitions_skipped": 1,
        "scored_by_version": {"card-fraud v1": 20000, "card-fraud v2": 3000},
        "predictions": "/lake/predictions",
    }
    day = {"day": "2026-11-28", "metric": "roc_auc", "model_version": "2", "rows": 2900, "value": 0.71}
    day["interval"] = {"low": 0.69, "high": 0.73}
    report.write(
        PARAMS, settings, "flywheel_scoring", "run-9", {"score": scored, "performance": {"days": [day]}}
    )
    text = report.render({"scoring": report.latest(PARAMS, settings, "flywheel_scoring")}, settings)
    assert (
        "Scoring:    run run-9: 3000 events scored by card-fraud v2 (1 partitions; 1 already scored)" in text
    )
    assert "predictions by version: card-fraud v1: 20000, card-fraud v2: 3000" in text
    assert "live roc_auc on 2026-11-28 (v2, 2900 labelled): 0.7100 [0.6900, 0.7300]; 1 days measured" in text


def test_no_scoring_run_yet(tmp_path):
    text = report.render({"scoring": None}, Settings.from_env({"FLYWHEEL_HOME": str(tmp_path)}))
    assert "Scoring:    no run yet" in text
