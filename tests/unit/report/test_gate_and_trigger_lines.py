"""The summary names the drift triggers that fired and shows the gate's block-bootstrap interval."""

from __future__ import annotations

import pytest

from pipelines.common.settings import Settings
from pipelines.report import summary as report

INTERVAL = {
    "mean": 0.02,
    "low": 0.012,
    "high": 0.031,
    "confidence": 0.9,
    "blocks": 48,
    "block": "1d",
    "rounds": 500,
}


def gate(condition: str, interval: dict | None, blocks: int = 48, metric: str = "pr_auc") -> dict:
    return {
        "condition": condition,
        "metric": metric,
        "block": "1d",
        "blocks": blocks,
        "min_blocks": 8,
        "rounds": 500,
        "confidence": 0.9,
        "interval": interval,
    }


def render(tmp_path, drift: dict, promotion: dict) -> str:
    settings = Settings.from_env({"FLYWHEEL_HOME": str(tmp_path)})
    training = {"run_id": "t", "trigger": "drift", "stages": {}, "metrics": {}, "promotion": promotion}
    return report.render({"ingest": None, "training": training, "drift": drift, "champion": None}, settings)


DRIFT = {
    "run_id": "d",
    "window": {"start": "2026-11-21", "end": "2026-11-22"},
    "rows_current": 900,
    "champion": "models:/m/1",
    "drift_share": 0.0,
    "performance": {"description": "champion roc_auc 0.7000 on 900 labelled rows vs 0.8600 evaluated: ..."},
    "verdict": {"retrain": True, "reasons": ["champion roc_auc 0.7000 ..."], "triggers": ["performance"]},
}


@pytest.mark.parametrize(
    ("promotion", "line"),
    [
        (
            {"promoted": True, "reason": "clears", "gate": gate("clears_margin", INTERVAL)},
            "block bootstrap: 90% CI of candidate − champion pr_auc [+0.0120, +0.0310] over 48 blocks of 1d "
            "(promote.min_blocks 8), 500 rounds",
        ),
        (  # an error metric: the interval is the improvement, champion − candidate
            {"promoted": True, "reason": "clears", "gate": gate("clears_margin", INTERVAL, metric="rmse")},
            "block bootstrap: 90% CI of champion − candidate rmse [+0.0120, +0.0310] over 48 blocks of 1d",
        ),
        (
            {"promoted": False, "reason": "too few", "gate": gate("too_few_blocks", None, blocks=3)},
            "block bootstrap: no interval (too_few_blocks); test rows span 3 blocks of 1d "
            "(promote.min_blocks 8)",
        ),
        ({"promoted": True, "reason": "an older summary, no gate record"}, None),
    ],
)
def test_gate_lines(tmp_path, promotion, line):
    text = render(tmp_path, DRIFT, promotion)
    if line is None:
        assert "block bootstrap" not in text
    else:
        assert line in text, text


def test_drift_lines_name_the_triggers_and_the_performance_check(tmp_path):
    text = render(tmp_path, DRIFT, {"promoted": False, "reason": "x"})
    assert "            performance: champion roc_auc 0.7000 on 900 labelled rows vs 0.8600 evaluated" in text
    assert "            triggers fired: performance" in text
    calm = {**DRIFT, "performance": None, "verdict": {"retrain": False, "reasons": ["no retrain: ..."]}}
    assert "triggers fired" not in render(tmp_path, calm, {"promoted": False, "reason": "x"})
