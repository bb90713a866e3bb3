"""The train stage end to end with MLflow: the tracked run, the logged model, the outputs, its errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from pipelines import featurize
from pipelines.common.settings import Settings
from pipelines.train import TrainError, run
from tests.support.data import churn_events, churn_params, write_snapshot


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Settings, dict]:
    home = tmp_path_factory.mktemp("home")
    settings = Settings.from_env({"FLYWHEEL_HOME": str(home)})
    params = churn_params(train={"epochs": 3, "batch_size": 256, "hidden": [32, 16]})
    write_snapshot(settings.workspace, churn_events(3000))
    featurize.run(params, None, settings.workspace)
    return settings.workspace, settings, run(params, settings, settings.workspace)


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
    assert len(model.predict(pd.DataFrame({"tenure": [5.0], "plan": ["pro"]}))) == 1  # optional column absent


def test_the_logged_model_refuses_a_wrong_type_naming_the_column(trained):
    """The signature has the schema's exact types: an int64 column where a float is expected is refused
    by MLflow (as with any signature MLflow infers); JSON into either server is cast first."""
    import mlflow
    from mlflow.exceptions import MlflowException

    _, settings, summary = trained
    mlflow.set_tracking_uri(settings.tracking_uri)
    model = mlflow.pyfunc.load_model(summary["model_uri"])
    with pytest.raises(MlflowException, match="column tenure. Can not safely convert int64 to float64"):
        model.predict(pd.DataFrame({"tenure": [5], "plan": ["pro"]}))


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


@pytest.mark.slow
def test_run_logs_the_splits_as_datasets_and_removes_its_checkpoints(trained):
    import mlflow

    workspace, settings, summary = trained
    run = mlflow.MlflowClient(settings.tracking_uri).get_run(summary["mlflow_run_id"])
    inputs = {
        {t.key: t.value for t in d.tags}["mlflow.data.context"]: (d.dataset, {t.key: t.value for t in d.tags})
        for d in run.inputs.dataset_inputs
    }
    assert set(inputs) == {"training", "validation"}
    for context, split in (("training", "train"), ("validation", "valid")):
        dataset, tags = inputs[context]
        md5 = hashlib.md5((workspace / f"data/split/{split}.parquet").read_bytes()).hexdigest()
        assert dataset.digest == md5 == tags["dvc.md5"] and tags["dvc.path"] == f"data/split/{split}.parquet"
        assert json.loads(dataset.source) == {"uri": f"data/split/{split}.parquet"}
    assert json.loads(inputs["training"][0].profile)["num_rows"] == 2100
    assert summary["resumed_from_epoch"] is None and not Path(summary["checkpoints"]).exists()
    assert not any(key.startswith("system/") for key in run.data.metrics)  # off in the tests' environment


@pytest.mark.slow
def test_run_logs_system_metrics_when_enabled(tmp_path, monkeypatch):
    import mlflow

    monkeypatch.delenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", raising=False)
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "1")  # restored after the test
    settings = Settings.from_env({"FLYWHEEL_HOME": str(tmp_path)})
    params = churn_params(
        train={"epochs": 2, "batch_size": 256, "hidden": [16, 8]},
        mlflow={"system_metrics": True, "system_metrics_interval_s": 0.2},
    )
    write_snapshot(settings.workspace, churn_events(2000))
    featurize.run(params, None, settings.workspace)
    summary = run(params, settings, settings.workspace)
    metrics = mlflow.MlflowClient(settings.tracking_uri).get_run(summary["mlflow_run_id"]).data.metrics
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= set(metrics)


def test_run_without_features_fails_clearly(tmp_path):
    settings = Settings.from_env({"FLYWHEEL_HOME": str(tmp_path)})
    with pytest.raises(TrainError, match=r"preprocess.json not found"):
        run(churn_params(), settings, tmp_path)
