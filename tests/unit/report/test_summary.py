"""The human summary `make run` ends with."""

from __future__ import annotations

from pipelines.common.config import load_params
from pipelines.common.settings import Settings
from pipelines.report import summary as report
from tests.support.install import ROOT

PARAMS = load_params(ROOT / "params.yaml")  # storage.root: null, the lake under the home


def test_render_without_runs(tmp_path):
    text = report.render(
        {"ingest": None, "training": None, "champion": None},
        Settings.from_env({"FLYWHEEL_HOME": str(tmp_path)}),
    )
    assert "Ingest:     no run yet" in text and "Champion:   none yet" in text


def test_render_shows_counts_stages_metrics_and_champion(tmp_path):
    settings = Settings.from_env({"FLYWHEEL_HOME": str(tmp_path)})
    report.write(
        PARAMS,
        settings,
        "flywheel_ingest",
        "run-1",
        {
            "ingest": {"consumed": 10, "landed": 9, "quarantined": 1},
            "validate": {
                "verdict": "pass",
                "validated_rows": 9,
                "rejected_rows": 0,
                "partitions": [{"docs_index": "/lake/docs/index.html"}],
            },
        },
    )
    report.write(
        PARAMS,
        settings,
        "flywheel_training",
        "run-2",
        {
            "trigger": "scheduled",
            "stages": {"snapshot": "ran", "featurize": "skipped", "train": "skipped"},
            "promotion": {"mlflow_run_id": "abc", "promoted": False, "reason": "already the champion"},
            "metrics": {"roc_auc": 0.91, "n": 100},
        },
    )
    data = {
        "ingest": report.latest(PARAMS, settings, "flywheel_ingest"),
        "training": report.latest(PARAMS, settings, "flywheel_training"),
        "champion": {"name": "m", "version": "3", "run_id": "abc"},
    }
    text = report.render(data, settings)
    assert "consumed 10, landed 9, quarantined 1" in text
    assert "/lake/docs/index.html" in text
    assert "ran snapshot; skipped as unchanged: featurize, train" in text
    assert "roc_auc 0.9100" in text and "not promoted: already the champion" in text
    assert "Champion:   m v3 (run abc)" in text
