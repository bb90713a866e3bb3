"""Evaluation: pure metric functions, and the stage reporting onto the training run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pipelines import featurize
from pipelines.common.settings import Settings
from pipelines.common.tracking import ensure_experiment
from pipelines.evaluate import metrics, plots
from pipelines.evaluate import stage as evaluate
from pipelines.train import loop as train
from pipelines.train.data import load_training_data
from pipelines.train.model import save_model_files
from pipelines.train.network import build_net
from pipelines.workspace.paths import MODEL_DIR
from tests.support.data import churn_events, churn_params, write_snapshot

Y = np.array([0, 0, 1, 1, 0, 1])
P = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])


# -- pure metrics --------------------------------------------------------------------------------


def test_classification_metrics_on_a_small_case():
    m = metrics.classification_metrics(Y, P, threshold=0.3, bins=2)
    assert (m["tn"], m["fp"], m["fn"], m["tp"]) == (2, 1, 0, 3)
    assert m["precision"] == pytest.approx(0.75) and m["recall"] == 1.0
    assert m["f1"] == pytest.approx(6 / 7)
    assert m["roc_auc"] == pytest.approx(8 / 9)
    assert m["brier"] == pytest.approx(np.mean((P - Y) ** 2))
    assert m["n"] == 6 and m["positive_rate"] == 0.5


@pytest.mark.parametrize(
    ("y", "p", "key", "expected"),
    [
        ([0, 1], [0.0, 1.0], "ece", 0.0),
        ([0, 0, 1, 1], [0.2, 0.2, 0.7, 0.7], "ece", 0.25),
        ([1, 1], [0.6, 0.9], "roc_auc", None),
        ([0, 0], [0.6, 0.9], "pr_auc", None),
        ([0, 0], [0.6, 0.9], "precision", 0.0),
    ],
    ids=["perfect-calibration", "under-and-over", "no-negatives", "no-positives", "no-true-positives"],
)
def test_metric_edge_cases(y, p, key, expected):
    value = metrics.classification_metrics(np.array(y), np.array(p), threshold=0.5, bins=10)[key]
    if expected is None:
        assert np.isnan(value)
    else:
        assert value == pytest.approx(expected)


def test_calibration_table_bins_by_predicted_probability():
    table = metrics.calibration_table(Y, P, bins=2)
    assert table == [
        {"bin": 0, "mean_predicted": pytest.approx(0.2625), "observed_rate": 0.25, "count": 4},
        {"bin": 1, "mean_predicted": pytest.approx(0.85), "observed_rate": 1.0, "count": 2},
    ]


def test_curves_are_thinned_and_keep_their_ends():
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 2, 5000), rng.uniform(size=5000)
    roc, pr = metrics.roc_points(y, p), metrics.pr_points(y, p)
    assert 2 < len(roc) <= 200 and 2 < len(pr) <= 200
    assert (roc[0]["fpr"], roc[0]["tpr"]) == (0.0, 0.0) and (roc[-1]["fpr"], roc[-1]["tpr"]) == (1.0, 1.0)
    assert pr[0]["recall"] == 0.0 and pr[-1]["recall"] == 1.0
    assert all(0 <= point["threshold"] <= 1 for point in roc)


def test_curves_are_empty_for_a_single_class():
    assert metrics.roc_points(np.zeros(3), np.ones(3)) == []
    assert metrics.pr_points(np.zeros(3), np.ones(3)) == []


def test_confusion_rows_follow_the_threshold():
    result = evaluate.evaluate_scores(Y.astype(np.float32), P, threshold=0.5, bins=10)
    assert result.confusion == [
        {"actual": a, "predicted": p} for a, p in [(0, 0), (0, 0), (1, 0), (1, 1), (0, 0), (1, 1)]
    ]


def test_figures_render_for_every_plot():
    figs = plots.figures(evaluate.evaluate_scores(Y, P, threshold=0.5, bins=4))
    assert sorted(figs) == ["calibration.png", "confusion.png", "pr.png", "roc.png"]


# -- the stage -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> tuple[Path, Settings, str, dict]:
    """A workspace with features and a model trained by :func:`train.fit`, recorded on an MLflow run."""
    import mlflow

    home = tmp_path_factory.mktemp("home")
    settings = Settings.from_env({"FLYWHEEL_HOME": str(home)})
    workspace = settings.workspace
    params = churn_params(train={"epochs": 4, "batch_size": 128, "hidden": [16, 8]})
    write_snapshot(workspace, churn_events(2000))
    featurize.run(params, None, workspace)
    data, pre = load_training_data(workspace)
    train.seed_everything(0)
    net = build_net(pre, params.train.hidden, params.train.dropout, params.train.max_embedding_dim)
    result = train.fit(net, data, params.train, torch.device("cpu"))
    threshold, _ = metrics.best_f1_threshold(data.valid_target.numpy(), result.best_valid_proba)
    experiment_id = ensure_experiment(settings, "flywheel")
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_metric("valid_pr_auc", result.best.valid_pr_auc)
    save_model_files(
        workspace / MODEL_DIR, net, pre, {"threshold": threshold, "mlflow_run_id": run.info.run_id}
    )
    return workspace, settings, run.info.run_id, evaluate.run(params, settings, workspace)


@pytest.mark.slow
def test_run_writes_metrics_within_bounds(evaluated):
    workspace, _, _, summary = evaluated
    metrics = json.loads((workspace / "metrics/evaluate.json").read_text())
    assert metrics == pytest.approx(summary["metrics"])
    for key in ("roc_auc", "pr_auc", "f1", "precision", "recall", "brier", "ece", "positive_rate"):
        assert 0 <= metrics[key] <= 1, key
    assert metrics["n"] == 300 == metrics["tn"] + metrics["fp"] + metrics["fn"] + metrics["tp"]
    assert metrics["roc_auc"] > 0.7


@pytest.mark.slow
def test_run_writes_dvc_plots(evaluated):
    workspace = evaluated[0]
    plots = {
        name: json.loads((workspace / f"plots/{name}.json").read_text())
        for name in ("roc", "pr", "calibration", "confusion")
    }
    assert set(plots["roc"][0]) == {"fpr", "tpr", "threshold"} and len(plots["roc"]) <= 200
    assert set(plots["pr"][0]) == {"recall", "precision", "threshold"} and len(plots["pr"]) <= 200
    assert set(plots["calibration"][0]) == {"bin", "mean_predicted", "observed_rate", "count"}
    assert len(plots["confusion"]) == 300 and set(plots["confusion"][0]) == {"actual", "predicted"}


@pytest.mark.slow
def test_run_logs_test_metrics_and_figures_onto_the_training_run(evaluated):
    import mlflow

    _, settings, run_id, summary = evaluated
    client = mlflow.MlflowClient(settings.tracking_uri)
    run = client.get_run(run_id)
    assert run.data.metrics["test_roc_auc"] == pytest.approx(summary["metrics"]["roc_auc"])
    assert {"test_pr_auc", "test_f1", "test_brier", "test_ece", "test_tp", "valid_pr_auc"} <= set(
        run.data.metrics
    )
    assert [a.path for a in client.list_artifacts(run_id, "evaluate")] == [
        "evaluate/calibration.png",
        "evaluate/confusion.png",
        "evaluate/pr.png",
        "evaluate/roc.png",
    ]
    assert run.info.status == "FINISHED"


@pytest.mark.slow
def test_run_logs_the_test_split_as_a_dataset_of_the_training_run(evaluated):
    import hashlib

    import mlflow

    workspace, settings, run_id, _ = evaluated
    inputs = mlflow.MlflowClient(settings.tracking_uri).get_run(run_id).inputs.dataset_inputs
    assert [{t.key: t.value for t in d.tags}["mlflow.data.context"] for d in inputs] == ["test"]
    md5 = hashlib.md5((workspace / "data/split/test.parquet").read_bytes()).hexdigest()
    assert inputs[0].dataset.digest == md5 and inputs[0].dataset.name == "churn-test"


def test_run_without_a_model_fails_clearly(tmp_path):
    settings = Settings.from_env({"FLYWHEEL_HOME": str(tmp_path)})
    with pytest.raises(evaluate.EvaluateError, match=r"models/model not found"):
        evaluate.run(churn_params(), settings, tmp_path)
