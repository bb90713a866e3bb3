"""Training: the pure loop, threshold choice, lineage tags, and the stage end to end with MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_featurize import churn_events, churn_params, write_snapshot

from pipelines import featurize, train
from pipelines.model import build_net
from pipelines.settings import Settings
from pipelines.train import TrainingData, best_f1_threshold, fit, positive_weight, ranking_metrics


def training_data(n: int = 1500, seed: int = 0) -> tuple[TrainingData, featurize.Preprocessor]:
    params = churn_params()
    result = featurize.build_features(churn_events(n, seed), params.schema, params.featurize)
    data = TrainingData.from_frames(result.features["train"], result.features["valid"], result.preprocessor)
    return data, result.preprocessor


def small_cfg(**overrides):
    base = {"epochs": 6, "batch_size": 128, "hidden": [16, 8], "patience": 2, "learning_rate": 0.01}
    return churn_params(train={**base, **overrides}).train


# -- small pure functions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [([0, 0, 0, 1], 3.0), ([0] * 99 + [1], 20.0), ([1, 1, 1, 0], 1 / 3), ([0, 0], 1.0)],
    ids=["balanced-3-to-1", "capped", "positives-majority", "no-positives"],
)
def test_positive_weight(target, expected):
    assert positive_weight(torch.tensor(target, dtype=torch.float32)) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("target", "proba", "threshold", "f1"),
    [
        ([0, 0, 1, 1], [0.1, 0.2, 0.7, 0.9], 0.7, 1.0),
        ([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.9], 0.2, 0.8),
        ([0, 0, 0], [0.1, 0.5, 0.9], 0.5, 0.0),
    ],
    ids=["separable", "one-miss", "no-positives"],
)
def test_best_f1_threshold(target, proba, threshold, f1):
    assert best_f1_threshold(np.array(target), np.array(proba)) == pytest.approx((threshold, f1))


def test_ranking_metrics_are_nan_for_a_single_class():
    assert all(np.isnan(ranking_metrics(np.zeros(4), np.linspace(0, 1, 4))))
    assert ranking_metrics(np.array([0, 1]), np.array([0.2, 0.8])) == (1.0, 1.0)


def test_select_device_honours_cpu():
    assert train.select_device("cpu").type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_select_device_falls_back_to_cpu_without_cuda(caplog):
    assert train.select_device("cuda").type == "cpu"
    assert "CUDA is not available" in caplog.text


# -- the loop ------------------------------------------------------------------------------------


def _fit(cfg, seed: int = 0) -> tuple[train.FitResult, torch.nn.Module, TrainingData]:
    data, pre = training_data()
    train.seed_everything(seed)
    net = build_net(pre, cfg.hidden, cfg.dropout, cfg.max_embedding_dim)
    return fit(net, data, cfg, torch.device("cpu")), net, data


def test_fit_restores_the_best_epoch_and_stops_after_patience():
    cfg = small_cfg(epochs=30, patience=2, learning_rate=0.05)
    seen: list[train.EpochStats] = []
    data, pre = training_data()
    train.seed_everything(0)
    net = build_net(pre, cfg.hidden, cfg.dropout, cfg.max_embedding_dim)
    result = fit(net, data, cfg, torch.device("cpu"), on_epoch=seen.append)

    assert seen == result.history
    scores = [s.valid_pr_auc for s in result.history]
    assert result.best_epoch == int(np.argmax(scores)) + 1
    assert len(result.history) == min(cfg.epochs, result.best_epoch + cfg.patience)
    _, pr_auc, _, proba = train.validate(net, data, torch.nn.BCEWithLogitsLoss())
    assert pr_auc == pytest.approx(result.best.valid_pr_auc)
    assert np.allclose(proba, result.best_valid_proba)


def test_fit_is_deterministic_for_a_seed():
    cfg = small_cfg(epochs=2)
    first, second = _fit(cfg)[0], _fit(cfg)[0]
    assert [(s.train_loss, s.valid_pr_auc) for s in first.history] == [
        (s.train_loss, s.valid_pr_auc) for s in second.history
    ]


def test_fit_learns_the_signal_and_counts_training_throughput():
    result, _, data = _fit(small_cfg(epochs=4))
    assert result.best.valid_roc_auc > 0.7
    assert result.train_samples == data.n_train * len(result.history)
    assert result.samples_per_s > 0


# -- lineage -------------------------------------------------------------------------------------


def test_lineage_tags(tmp_path):
    params = churn_params()
    (tmp_path / "data/snapshot").mkdir(parents=True)
    (tmp_path / "data/snapshot/window.json").write_text(json.dumps({"rows": 3, "partitions": ["p1"]}))
    (tmp_path / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  featurize:\n    outs:\n"
        "    - path: data/features\n      md5: abc.dir\n    - path: data/split\n      md5: def.dir\n"
    )
    settings = Settings.from_env({"FLYWHEEL_HOME": str(tmp_path), "FLYWHEEL_PROJECT": str(tmp_path)})
    env = {"AIRFLOW_CTX_DAG_ID": "flywheel_training", "AIRFLOW_CTX_DAG_RUN_ID": "manual__1"}
    tags = train.lineage_tags(params, tmp_path, settings, env)

    assert tags == {
        "flywheel.stage": "train",
        "flywheel.schema": "churn",
        "flywheel.git_commit": "unknown",
        "airflow.dag_id": "flywheel_training",
        "airflow.run_id": "manual__1",
        "flywheel.data_window": '{"partitions":["p1"],"rows":3}',
        "flywheel.dvc.features_md5": "abc.dir",
        "flywheel.dvc.split_md5": "def.dir",
    }


def test_lineage_tags_without_optional_sources(tmp_path):
    settings = Settings.from_env({"FLYWHEEL_HOME": str(tmp_path), "FLYWHEEL_PROJECT": str(tmp_path)})
    tags = train.lineage_tags(churn_params(), tmp_path, settings, {})
    assert set(tags) == {"flywheel.stage", "flywheel.schema", "flywheel.git_commit"}


def test_a_long_window_is_shortened_to_fit_a_tag():
    window = {"rows": 5, "partitions": [f"validated/source=files/run={i:06d}" for i in range(1000)]}
    tag = train.window_tag(window, limit=200)
    assert json.loads(tag) == {"rows": 5, "partitions": "1000 items, see lineage/window.json"}


def test_signature_accepts_raw_numeric_forms_and_optional_columns():
    from mlflow.types.schema import DataType

    inputs = {c.name: c for c in train.model_signature(churn_params().schema).inputs.inputs}
    assert str(inputs["tenure"].type) == "Any" and inputs["tenure"].required
    assert inputs["plan"].type == DataType.string
    assert not inputs["support_calls"].required


# -- the stage -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Settings, dict]:
    home = tmp_path_factory.mktemp("home")
    settings = Settings.from_env({"FLYWHEEL_HOME": str(home)})
    params = churn_params(train={"epochs": 3, "batch_size": 256, "hidden": [32, 16]})
    write_snapshot(settings.workspace, churn_events(3000))
    featurize.run(params, settings.workspace)
    return settings.workspace, settings, train.run(params, settings.workspace, settings)


@pytest.mark.slow
def test_run_tracks_the_run_in_mlflow(trained):
    import mlflow

    workspace, settings, summary = trained
    client = mlflow.MlflowClient(settings.tracking_uri)
    run = client.get_run(summary["mlflow_run_id"])

    assert run.info.run_name.startswith("train-")
    assert run.data.params["train.epochs"] == "3" and run.data.params["schema"] == "churn"
    assert run.data.params["n_train"] == "2100" and run.data.params["n_valid"] == "450"
    assert run.data.tags["flywheel.stage"] == "train"
    epochs = summary["metrics"]["epochs_run"]
    for key in ("train_loss", "valid_loss", "valid_pr_auc", "valid_roc_auc"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == list(range(1, epochs + 1))
    assert run.data.metrics["best_valid_roc_auc"] > 0.7
    assert [a.path for a in client.list_artifacts(run.info.run_id, "plots")] == ["plots/learning_curve.png"]
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == "flywheel" and experiment.artifact_location == settings.artifact_root.as_uri()


@pytest.mark.slow
def test_the_logged_model_predicts_raw_rows(trained):
    import mlflow

    _, settings, summary = trained
    mlflow.set_tracking_uri(settings.tracking_uri)
    model = mlflow.pyfunc.load_model(summary["model_uri"])
    raw = pd.DataFrame(
        {
            "tenure": [2.0, 70.0, None],
            "plan": ["basic", "max", "platinum"],
            "support_calls": pd.array([6, 0, None], dtype="Int64"),
            "customer_id": ["a", "b", "c"],
        }
    )
    out = model.predict(raw)
    assert out.columns.tolist() == ["probability", "label"]
    assert out.probability.between(0, 1).all() and set(out.label) <= {0, 1}
    assert out.probability[0] > out.probability[1]  # short tenure, many calls, basic plan churns more
    assert len(model.predict(pd.DataFrame({"tenure": [5], "plan": ["pro"]}))) == 1


@pytest.mark.slow
def test_run_writes_the_model_folder_and_reports(trained):
    workspace, _, summary = trained
    meta = json.loads((workspace / "models/model/model.json").read_text())
    assert meta["mlflow_run_id"] == summary["mlflow_run_id"] and meta["model_uri"] == summary["model_uri"]
    assert meta["feature_order"] == ["tenure", "support_calls", "plan"]
    assert 0 < meta["threshold"] < 1 and meta["device"] == "cpu"
    assert {p.name for p in (workspace / "models/model").iterdir()} == {
        "state_dict.pt",
        "preprocess.json",
        "model.json",
    }
    metrics = json.loads((workspace / "metrics/train.json").read_text())
    assert metrics["epochs_run"] == meta["epochs_run"] and metrics["samples_per_s"] > 0
    curve = json.loads((workspace / "plots/train_curve.json").read_text())
    assert [row["epoch"] for row in curve] == list(range(1, meta["epochs_run"] + 1))
    assert set(curve[0]) == {"epoch", "train_loss", "valid_loss", "valid_pr_auc"}


def test_run_without_features_fails_clearly(tmp_path):
    settings = Settings.from_env({"FLYWHEEL_HOME": str(tmp_path)})
    with pytest.raises(train.TrainError, match=r"preprocess.json not found"):
        train.run(churn_params(), tmp_path, settings)
