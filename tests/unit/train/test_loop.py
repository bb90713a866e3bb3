"""The pure training loop: class weights, early stopping, determinism, resuming from a state, CUDA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipelines.evaluate.metrics import best_f1_threshold, ranking_metrics
from pipelines.train import loop, placement
from pipelines.train.loop import EpochStats, FitResult, FitState, fit, positive_weight, train_model
from pipelines.train.network import build_net
from tests.support.data import churn_params, training_data


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


# -- the loop ------------------------------------------------------------------------------------


def _fit(cfg, seed: int = 0) -> tuple[FitResult, torch.nn.Module, object]:
    data, pre = training_data()
    loop.seed_everything(seed)
    net = build_net(pre, cfg.hidden, cfg.dropout, cfg.max_embedding_dim)
    return fit(net, data, cfg, torch.device("cpu")), net, data


def test_fit_restores_the_best_epoch_and_stops_after_patience():
    cfg = small_cfg(epochs=30, patience=2, learning_rate=0.05)
    seen: list[EpochStats] = []
    data, pre = training_data()
    loop.seed_everything(0)
    net = build_net(pre, cfg.hidden, cfg.dropout, cfg.max_embedding_dim)
    result = fit(net, data, cfg, torch.device("cpu"), on_epoch=seen.append)

    assert seen == result.history
    scores = [s.valid_pr_auc for s in result.history]
    assert result.best_epoch == int(np.argmax(scores)) + 1
    assert len(result.history) == min(cfg.epochs, result.best_epoch + cfg.patience)
    _, pr_auc, _, proba = loop.validate(net, data, torch.nn.BCEWithLogitsLoss())
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


def test_train_model_builds_through_its_factory_and_picks_the_threshold():
    cfg = small_cfg(epochs=2, device="cpu")
    data, pre = training_data()
    built: list[torch.nn.Module] = []

    def build() -> torch.nn.Module:
        built.append(build_net(pre, cfg.hidden, cfg.dropout, cfg.max_embedding_dim))
        return built[-1]

    net, result, threshold, f1 = train_model(cfg, data, build)
    assert built == [net] and next(net.parameters()).device.type == "cpu"
    expected = best_f1_threshold(data.valid_target.numpy(), result.best_valid_proba)
    assert (threshold, f1) == pytest.approx(expected)


def _states(cfg, seed: int = 0, device: str = "cpu") -> tuple[FitResult, list[FitState], torch.nn.Module]:
    """An uninterrupted fit, and a deep copy of its state (with RNG states) after every epoch."""
    import copy

    from pipelines.train.checkpoint import capture_rng

    data, pre = training_data()
    loop.seed_everything(seed)
    net = build_net(pre, cfg.hidden, cfg.dropout, cfg.max_embedding_dim)
    states: list[FitState] = []

    def keep(state: FitState) -> None:
        states.append(copy.deepcopy(FitState(**{**state.__dict__, "rng": capture_rng()})))

    return fit(net, data, cfg, torch.device(device), on_state=keep), states, net


def test_fit_resumed_from_a_state_ends_exactly_like_an_uninterrupted_fit():
    cfg = small_cfg(epochs=5, patience=5, dropout=0.2)
    whole, states, whole_net = _states(cfg)
    assert [s.epoch for s in states] == [1, 2, 3, 4, 5]

    data, pre = training_data()
    loop.seed_everything(123)  # a fresh process: other seeds, other initial weights
    net = build_net(pre, cfg.hidden, cfg.dropout, cfg.max_embedding_dim)
    seen: list[EpochStats] = []
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
    seen: list[EpochStats] = []
    again = fit(net, data, cfg, torch.device("cpu"), on_epoch=seen.append, resume=states[-1])
    assert seen == [] and again.history == whole.history and again.best_epoch == whole.best_epoch


def test_fit_state_survives_a_weights_only_checkpoint(tmp_path):
    from pipelines.train.checkpoint import CheckpointStore

    _, states, _ = _states(small_cfg(epochs=2, patience=2))
    store = CheckpointStore(tmp_path)
    store.save({**states[-1].to_payload(), "rng": [states[-1].rng], "mlflow_run_id": "r1"})
    loaded = FitState.from_payload(store.load(), rank=0)
    assert loaded.epoch == 2 and loaded.history == states[-1].history
    assert loaded.best.epoch == states[-1].best.epoch
    assert np.array_equal(loaded.best.proba, states[-1].best.proba)
    assert torch.equal(loaded.rng["torch"], states[-1].rng["torch"])


# -- CUDA (skipped without a GPU) ------------------------------------------------------------------


def needs_cuda(test):
    """Marked ``cuda`` (``make gpu-check`` runs them: ``pytest -m cuda``) and skipped without CUDA."""
    return pytest.mark.cuda(pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")(test))


def _cuda_fit(cfg):
    data, pre = training_data()
    loop.seed_everything(0)
    net = build_net(pre, cfg.hidden, cfg.dropout, cfg.max_embedding_dim)
    dtypes: list[torch.dtype] = []
    net.mlp[0].register_forward_hook(lambda _m, _i, out: dtypes.append(out.dtype) if net.training else None)
    return fit(net, data, cfg, torch.device("cuda")), dtypes


@needs_cuda
def test_cuda_fit_is_resident_in_bf16_with_the_gpu_batch():
    result, dtypes = _cuda_fit(small_cfg(epochs=2, gpu_batch_size=256))
    placed = result.placement
    assert placed.device.type == "cuda" and placed.resident and placed.batch_size == 256
    assert placed.bf16 == torch.cuda.is_bf16_supported()
    assert set(dtypes) == {torch.bfloat16 if placed.bf16 else torch.float32}
    assert result.best.valid_roc_auc > 0.7


@needs_cuda
def test_cuda_fit_copies_batches_when_the_data_does_not_fit(monkeypatch):
    monkeypatch.setattr(placement, "RESIDENT_SHARE", 0.0)
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
