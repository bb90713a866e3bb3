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


def test_a_run_report_written_on_one_worker_is_read_from_another_home(tmp_path, demo_params):
    """On the stack each worker's home is its own: the reports live in the lake, which all of them share."""
    from datetime import datetime

    params = demo_params.model_copy(
        update={"storage": demo_params.storage.model_copy(update={"root": str(tmp_path / "lake")})}
    )
    worker = Settings.from_env({"FLYWHEEL_HOME": str(tmp_path / "worker")})
    exporter = Settings.from_env({"FLYWHEEL_HOME": str(tmp_path / "exporter")})
    assert report.latest_all(params, exporter) == {}
    report.write(params, worker, "flywheel_training", "run-1", {"trigger": "manual"})
    report.write(params, worker, "flywheel_training", "run-2", {"trigger": "drift"})
    found = report.latest_all(params, exporter)
    assert set(found) == {"flywheel_training"} and found["flywheel_training"]["run_id"] == "run-2"
    assert datetime.fromisoformat(found["flywheel_training"]["written_at"]).tzinfo is not None
    assert report.latest(params, exporter, "flywheel_training")["run_id"] == "run-2"
