"""Training: the pure loop, threshold choice, lineage tags, and the stage end to end with MLflow."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from pipelines.common.settings import Settings
from pipelines.evaluate.metrics import best_f1_threshold, ranking_metrics
from pipelines.featurize import preprocess as featurize
from pipelines.train import stage as train
from pipelines.train.network import build_net
from pipelines.train.stage import TrainingData, fit, positive_weight
from tests.support.data import churn_events, churn_params, training_data, write_snapshot


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


GB = 1 << 30


@pytest.mark.parametrize(
    ("device", "data_bytes", "free_bytes", "bf16", "expected"),
    [
        ("cpu", 10 * GB, None, None, (128, False, True)),
        ("cuda", 1 * GB, 80 * GB, True, (4096, True, True)),
        ("cuda", 50 * GB, 80 * GB, True, (4096, True, False)),
        ("cuda", 1 * GB, 80 * GB, False, (4096, False, True)),
    ],
    ids=["cpu-batch-fp32", "cuda-resident-bf16", "cuda-too-big-for-free-memory", "cuda-without-bf16"],
)
def test_plan_placement(device, data_bytes, free_bytes, bf16, expected):
    cfg = small_cfg(gpu_batch_size=4096)
    placement = train.plan_placement(cfg, torch.device(device), data_bytes, free_bytes, bf16)
    assert (placement.batch_size, placement.bf16, placement.resident) == expected
    assert placement.compile is False


def _states(
    cfg, seed: int = 0, device: str = "cpu"
) -> tuple[train.FitResult, list[train.FitState], torch.nn.Module]:
    """An uninterrupted fit, and a deep copy of its state (with RNG states) after every epoch."""
    import copy

    from pipelines.train.checkpoint import capture_rng

    data, pre = training_data()
    train.seed_everything(seed)
    net = build_net(pre, cfg.hidden, cfg.dropout, cfg.max_embedding_dim)
    states: list[train.FitState] = []

    def keep(state: train.FitState) -> None:
        states.append(copy.deepcopy(train.FitState(**{**state.__dict__, "rng": capture_rng()})))

    return fit(net, data, cfg, torch.device(device), on_state=keep), states, net


def test_fit_resumed_from_a_state_ends_exactly_like_an_uninterrupted_fit():
    cfg = small_cfg(epochs=5, patience=5, dropout=0.2)
    whole, states, whole_net = _states(cfg)
    assert [s.epoch for s in states] == [1, 2, 3, 4, 5]

    data, pre = training_data()
    train.seed_everything(123)  # a fresh process: other seeds, other initial weights
    net = build_net(pre, cfg.hidden, cfg.dropout, cfg.max_embedding_dim)
    seen: list[train.EpochStats] = []
    resumed = fit(net, data, cfg, torch.device("cpu"), on_epoch=seen.append, resume=states[1])

    assert resumed.resumed_from == 2 and [s.epoch for s in seen] == [3, 4, 5]
    strip = [(s.epoch, s.train_loss, s.valid_loss, s.valid_pr_auc) for s in whole.history]
    assert [(s.epoch, s.train_loss, s.valid_loss, s.valid_pr_auc) for s in resumed.history] == strip
    assert resumed.best_epoch == whole.best_epoch
    assert all(
        torch.equal(a, b)
        for a, b in zip(net.state_dict().values(), whole_net.state_dict().values(), strict=True)
    )


def test_fit_resumed_after_early_stopping_trains_no_further():
    cfg = small_cfg(epochs=30, patience=1, learning_rate=0.05)
    whole, states, _ = _states(cfg)
    data, pre = training_data()
    net = build_net(pre, cfg.hidden, cfg.dropout, cfg.max_embedding_dim)
    seen: list[train.EpochStats] = []
    again = fit(net, data, cfg, torch.device("cpu"), on_epoch=seen.append, resume=states[-1])
    assert seen == [] and again.history == whole.history and again.best_epoch == whole.best_epoch


def test_fit_state_survives_a_weights_only_checkpoint(tmp_path):
    from pipelines.train.checkpoint import CheckpointStore

    _, states, _ = _states(small_cfg(epochs=2, patience=2))
    store = CheckpointStore(tmp_path)
    store.save({**states[-1].to_payload(), "rng": [states[-1].rng], "mlflow_run_id": "r1"})
    loaded = train.FitState.from_payload(store.load(), rank=0)
    assert loaded.epoch == 2 and loaded.history == states[-1].history
    assert loaded.best.epoch == states[-1].best.epoch
    assert np.array_equal(loaded.best.proba, states[-1].best.proba)
    assert torch.equal(loaded.rng["torch"], states[-1].rng["torch"])


# -- CUDA (skipped without a GPU) ------------------------------------------------------------------

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _cuda_fit(cfg):
    data, pre = training_data()
    train.seed_everything(0)
    net = build_net(pre, cfg.hidden, cfg.dropout, cfg.max_embedding_dim)
    dtypes: list[torch.dtype] = []
    net.mlp[0].register_forward_hook(lambda _m, _i, out: dtypes.append(out.dtype) if net.training else None)
    return fit(net, data, cfg, torch.device("cuda")), dtypes


@needs_cuda
def test_cuda_fit_is_resident_in_bf16_with_the_gpu_batch():
    result, dtypes = _cuda_fit(small_cfg(epochs=2, gpu_batch_size=256))
    placement = result.placement
    assert placement.device.type == "cuda" and placement.resident and placement.batch_size == 256
    assert placement.bf16 == torch.cuda.is_bf16_supported()
    assert set(dtypes) == {torch.bfloat16 if placement.bf16 else torch.float32}
    assert result.best.valid_roc_auc > 0.7


@needs_cuda
def test_cuda_fit_copies_batches_when_the_data_does_not_fit(monkeypatch):
    monkeypatch.setattr(train, "RESIDENT_SHARE", 0.0)
    result, _ = _cuda_fit(small_cfg(epochs=2, gpu_batch_size=256))
    assert not result.placement.resident and result.best.valid_roc_auc > 0.7


@needs_cuda
def test_cuda_fit_resumed_from_a_state_ends_like_an_uninterrupted_fit():
    """On CUDA (bf16, atomic adds in the embedding backward): resumed and whole agree within 0.01 PR-AUC."""
    cfg = small_cfg(epochs=4, patience=4, gpu_batch_size=256)
    whole, states, _ = _states(cfg, device="cuda")
    assert states[1].rng["cuda"] is not None
    data, pre = training_data()
    net = build_net(pre, cfg.hidden, cfg.dropout, cfg.max_embedding_dim)
    resumed = fit(net, data, cfg, torch.device("cuda"), resume=states[1])
    assert resumed.resumed_from == 2 and len(resumed.history) == len(whole.history)
    assert resumed.best.valid_pr_auc == pytest.approx(whole.best.valid_pr_auc, abs=0.01)


@needs_cuda
@pytest.mark.slow
def test_cuda_fit_with_torch_compile():
    result, _ = _cuda_fit(small_cfg(epochs=2, gpu_batch_size=256, compile=True))
    assert result.placement.compile and result.best.valid_roc_auc > 0.7


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
    featurize.run(params, None, settings.workspace)
    return settings.workspace, settings, train.run(params, settings, settings.workspace)


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
    summary = train.run(params, settings, settings.workspace)
    metrics = mlflow.MlflowClient(settings.tracking_uri).get_run(summary["mlflow_run_id"]).data.metrics
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= set(metrics)


def test_run_without_features_fails_clearly(tmp_path):
    settings = Settings.from_env({"FLYWHEEL_HOME": str(tmp_path)})
    with pytest.raises(train.TrainError, match=r"preprocess.json not found"):
        train.run(churn_params(), settings, tmp_path)
