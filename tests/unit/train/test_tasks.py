"""Training other tasks: the loss per task, early stopping on the task's metric, the network's outputs,
and the saved model answering as users expect (a number; class probabilities and a label)."""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from pipelines.featurize.stage import build_features
from pipelines.train.data import TrainingData
from pipelines.train.loop import EpochStats, train_model
from pipelines.train.model import Predictor, prediction_scores, save_model_files
from pipelines.train.network import FeatureSpec, TabularNet, net_factory
from pipelines.train.objective import Objective, class_weights
from tests.support.data import CHURN_SCHEMA, churn_events

LEVELS = ("low", "mid", "high")


def task_params(task: str, **train: object):
    from pipelines.common.config import parse_params

    schema = {**CHURN_SCHEMA, "task": task}
    metric = {"regression": "rmse", "multiclass": "macro_f1"}[task]
    if task == "multiclass":
        schema["classes"] = list(LEVELS)
    return parse_params(
        {
            "schema": schema,
            "featurize": {"min_category_count": 1},
            "train": {"epochs": 6, "patience": 6, "batch_size": 64, "hidden": [16], **train},
            "promote": {"metric": metric},
            "drift": {"performance_metric": metric},
        }
    )


def task_events(task: str, n: int = 900) -> pd.DataFrame:
    """Churn rows whose target is a learnable number (spend) or level of it."""
    events = churn_events(n)
    calls = events["support_calls"].fillna(0).to_numpy(dtype=float)
    spend = 100 + 2.0 * events["tenure"].to_numpy() + 15 * calls + np.where(events["plan"] == "max", 40, 0)
    spend = spend + np.random.default_rng(1).normal(0, 5, n)
    if task == "regression":
        return events.assign(churned=spend)
    levels = np.digitize(spend, np.quantile(spend, [1 / 3, 2 / 3]))
    return events.assign(churned=np.array(LEVELS, dtype=object)[levels])


def fitted(task: str, **train: object):
    params = task_params(task, **train)
    result = build_features(task_events(task), params.schema, params.featurize)
    pre = result.preprocessor
    data = TrainingData.from_frames(result.features["train"], result.features["valid"], pre)
    return params, pre, data, result


@pytest.mark.parametrize(
    ("task", "train", "loss"),
    [
        ("regression", {}, nn.MSELoss),
        ("regression", {"regression_loss": "huber"}, nn.HuberLoss),
        ("multiclass", {}, nn.CrossEntropyLoss),
    ],
)
def test_the_loss_follows_the_task(task, train, loss):
    params, pre, data, _ = fitted(task, **train)
    objective = Objective.of(pre, params.train)
    assert isinstance(objective.loss(data.train_target, torch.device("cpu")), loss)


def test_class_weights_are_inverse_frequency_capped():
    weights = class_weights(torch.tensor([0, 0, 0, 1, 2, 2]), 4)
    assert weights[:3].tolist() == pytest.approx([0.5, 1.5, 0.75]) and weights[3] == 0


def test_a_regression_target_is_learned_on_its_standard_scale():
    _, pre, data, result = fitted("regression")
    raw = result.features["train"]["churned"].to_numpy()
    assert pre.target_mean == pytest.approx(raw.mean()) and pre.target_std == pytest.approx(raw.std())
    assert float(data.train_target.mean()) == pytest.approx(0.0, abs=1e-4)


@pytest.mark.parametrize(("task", "stop"), [("regression", "rmse"), ("multiclass", "log_loss")])
def test_training_stops_on_the_tasks_metric_and_the_model_answers_per_task(task, stop, tmp_path):
    params, pre, data, result = fitted(task)
    cfg, objective = params.train, Objective.of(pre, params.train)
    assert objective.stop_metric == stop
    net, fit, _, best = train_model(cfg, data, partial(net_factory(cfg), pre, cfg), objective=objective)
    assert all(s.valid_metric is not None and s.valid_score == -s.valid_metric for s in fit.history)
    assert fit.best.score == max(s.score for s in fit.history) and best == fit.best.valid_metric
    first, last = fit.history[0].valid_metric, fit.best.valid_metric
    assert last < first  # both are lower-is-better: it learned
    save_model_files(tmp_path / "model", net, pre, {"threshold": 0.5})
    predictor = Predictor.load(tmp_path / "model")
    raw = result.splits.test
    out = predictor.predict(raw)
    if task == "regression":
        assert out.columns.tolist() == ["prediction"]
        rmse = float(np.sqrt(np.mean((out["prediction"] - raw["churned"]) ** 2)))
        assert rmse < raw["churned"].std()  # better than predicting the mean
        assert prediction_scores(out).shape == (len(raw),)
    else:
        assert out.columns.tolist() == ["label", "probability", *(f"proba_{c}" for c in LEVELS)]
        assert set(out["label"]) <= set(LEVELS)
        scores = prediction_scores(out, LEVELS)
        assert scores.shape == (len(raw), 3) and np.allclose(scores.sum(axis=1), 1)
        assert (out["probability"] == scores.max(axis=1)).all()


def test_the_builtin_network_gives_one_logit_per_class():
    _, pre, _, _ = fitted("multiclass")
    spec = FeatureSpec.of(pre, 4)
    assert (spec.task, spec.output_size) == ("multiclass", 3)
    net = TabularNet(2, (4,), hidden=(8,), n_outputs=3)
    assert net(torch.zeros(5, 2), torch.zeros(5, 1, dtype=torch.long)).shape == (5, 3)
    assert net.config["n_outputs"] == 3 and "n_outputs" not in TabularNet(2, (4,), hidden=(8,)).config


def test_a_binary_epochs_score_is_unchanged():
    stats = EpochStats(1, 0.5, 0.4, 0.3, 0.8, 1.0)
    assert stats.score == 0.3 and stats.valid_metric is None


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("task", ["regression", "multiclass"])
def test_other_tasks_train_on_cuda_and_learn(task):
    """The loss of each task on the GPU (bf16 where supported, resident tensors): it places and learns."""
    params, pre, data, _ = fitted(task, device="cuda", gpu_batch_size=128)
    cfg, objective = params.train, Objective.of(pre, params.train)
    _, fit, _, _ = train_model(cfg, data, partial(net_factory(cfg), pre, cfg), objective=objective)
    assert fit.placement.device.type == "cuda" and fit.placement.bf16 == torch.cuda.is_bf16_supported()
    assert fit.best.valid_metric < fit.history[0].valid_metric  # lower is better for both: it learned
