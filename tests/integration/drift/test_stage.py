"""The drift stage against a real champion: calibrated alarms and the performance trigger, end to end.

A real installation (validated demo events, `flywheel repro` ran, a champion in MLflow): an ordinary week
raises no alarm, with every column judged against its calibrated threshold and the champion's performance
on the labelled rows judged against what the gate recorded; a drifted day fires and names its triggers.
"""

from __future__ import annotations

import contextlib
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from mlflow import MlflowClient

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def cli(*args: str) -> dict:
    from pipelines import cli as flywheel

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = flywheel.main([*args, "--json"])
    result = json.loads(out.getvalue().strip().splitlines()[-1])
    assert code == 0, result
    return result


@pytest.fixture(scope="module")
def champion(trained) -> dict:
    """The first `flywheel repro` of the installation: its promotion."""
    promotion = cli("repro")["promotion"]
    assert promotion["promoted"] is True, promotion
    return promotion


def days_ago(days: int) -> datetime:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days)


def check(trained, run_id: str, window_days: int, as_of: datetime) -> dict:
    from pipelines import drift

    params = trained.params()
    cfg = params.drift.model_copy(update={"window_days": window_days, "min_rows": 200})
    return drift.run(params.model_copy(update={"drift": cfg}), trained.settings(), run_id, as_of=as_of)


def test_an_ordinary_week_raises_no_alarm_and_judges_the_champions_performance(trained, champion):
    summary = check(trained, "calm-week", window_days=7, as_of=days_ago(2))  # the drifted day comes after
    verdict, performance = summary["verdict"], summary["performance"]
    assert verdict["retrain"] is False and verdict["triggers"] == [], verdict
    tested = [c for c in summary["columns"] if not c["skipped"]]
    assert tested and all("quantile of its distances over 100 windows" in c["calibration"] for c in tested)
    assert all(c["threshold"] != trained.params().drift.column_threshold for c in tested)
    assert performance["difference"] is not None and performance["evaluated"]["se"] > 0, performance
    assert performance["evaluated"]["value"] == pytest.approx(champion["candidate"]["roc_auc"])
    assert "is not below -drift.max_performance_drop" in performance["description"]
    logged = MlflowClient(trained.settings().tracking_uri).get_run(summary["mlflow_run_id"])
    assert (
        logged.data.tags["flywheel.drift.triggers"] == "none"
        and logged.data.tags["flywheel.drift.alarm"] == "calibrated"
    )
    assert "performance.difference_low" in logged.data.metrics


def test_a_drifted_day_fires_and_names_its_triggers(trained, champion):
    from pipelines.demo import generator as produce

    start = days_ago(1)
    produce.produce(
        str(trained.events),
        rows=3000,
        seed=77,
        batch="drifted",
        start=start,
        end=start + timedelta(days=1),
        covariate_drift=1.0,
        concept_drift=0.3,
    )
    for command in ("ingest", "validate"):
        cli(command)
    summary = check(trained, "drifted-day", window_days=1, as_of=start)
    verdict = summary["verdict"]
    assert verdict["retrain"] is True and "critical_column" in verdict["triggers"], verdict
    assert set(verdict["triggers"]) <= {"data_drift", "critical_column", "performance", "quality_floor"}
    amount = next(c for c in summary["columns"] if c["name"] == "amount")
    assert amount["drifted"] and amount["score"] >= amount["threshold"] and amount["calibration"]
    assert any("critical column amount (wasserstein" in reason for reason in verdict["reasons"])
