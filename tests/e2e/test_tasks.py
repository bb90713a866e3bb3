"""A regression and a multiclass dataset through the DAGs by params alone, each ending with a champion;
on the regression one, a drifted day makes ``flywheel_drift`` ask for a retrain and ``flywheel_training``
retrains, its candidate gated on RMSE (lower is better)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import yaml

from tests.support.install import ROOT, make_installation, run_dag

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
YESTERDAY = TODAY - timedelta(days=1)


def example_install(tmp_path, monkeypatch, folder: str):
    params = yaml.safe_load((ROOT / "examples" / folder / "params.yaml").read_text())
    params["train"].update(epochs=6, patience=3)
    params["drift"].update(window_days=1, min_rows=200, max_performance_drop=0.0)
    return make_installation(tmp_path, monkeypatch, params)


def produce(install, task: str, rows: int, seed: int, start=None, end=YESTERDAY, drifted: bool = False):
    from pipelines.demo.variants import produce_task

    produce_task(
        str(install.events),
        task,
        rows=rows,
        seed=seed,
        start=start,
        end=end,
        batch="drifted" if drifted else "demo",
        covariate_drift=1.0 if drifted else 0.0,
        concept_drift=1.0 if drifted else 0.0,
    )


def train(dagbag, install) -> dict:
    from pipelines.report import summary as report

    run, states = run_dag(dagbag, "flywheel_training")
    assert run.state == "success", states
    return report.latest(install.params(), install.settings(), "flywheel_training")


@pytest.mark.parametrize(
    ("task", "folder"), [("regression", "delivery-times"), ("multiclass", "support-tickets")]
)
def test_a_dataset_of_another_task_ends_with_a_champion(dagbag, tmp_path, monkeypatch, task, folder):
    import mlflow

    install = example_install(tmp_path, monkeypatch, folder)
    produce(install, task, rows=4000, seed=21)
    assert run_dag(dagbag, "flywheel_ingest")[0].state == "success"
    record = train(dagbag, install)
    assert record["promotion"]["promoted"] is True, record["promotion"]
    name = install.params().promote.model_name
    version = mlflow.MlflowClient().get_model_version_by_alias(name, "champion")
    assert str(version.version) == record["promotion"]["version"]
    if task == "multiclass":
        return
    produce(install, task, rows=1500, seed=22, start=YESTERDAY, end=TODAY, drifted=True)
    assert run_dag(dagbag, "flywheel_ingest")[0].state == "success"
    run, states = run_dag(dagbag, "flywheel_drift", logical_date=YESTERDAY + timedelta(hours=12))
    assert run.state == "success" and states["trigger_retrain"] == "success", states
    record = train(dagbag, install)
    gate = record["promotion"]["gate"]
    assert gate["metric"] == "rmse" and gate["condition"] in ("clears_margin", "below_margin"), gate
    assert record["promotion"]["champion_scores"]["rmse"] > 0
