"""Checkpoints: the fingerprint of the inputs, RNG states, atomic weights-only files, the run marker."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest
import torch

from pipelines.train import checkpoint
from pipelines.train.checkpoint import CheckpointStore, capture_rng, fingerprint, restore_rng
from tests.support.data import churn_params


@pytest.fixture
def features(tmp_path):
    files = []
    for name, content in (
        ("train.parquet", b"train rows"),
        ("valid.parquet", b"valid rows"),
        ("preprocess.json", b"{}"),
    ):
        (tmp_path / name).write_bytes(content)
        files.append(tmp_path / name)
    return files


def _cfg(**train):
    return churn_params(train=train).train


@pytest.mark.parametrize(
    ("change", "same"),
    [
        (lambda files: (_cfg(), files, 1), True),
        (lambda files: (_cfg(schedule="0 5 * * *"), files, 1), True),
        (lambda files: (_cfg(epochs=7), files, 1), False),
        (lambda files: (_cfg(learning_rate=0.1), files, 1), False),
        (lambda files: (_cfg(), files, 2), False),
        (lambda files: (files[0].write_bytes(b"other rows"), (_cfg(), files, 1))[1], False),
    ],
    ids=["identical", "schedule-ignored", "epochs", "learning-rate", "world-size", "features-content"],
)
def test_fingerprint_changes_with_what_training_depends_on(features, change, same):
    before = fingerprint(_cfg(), features, 1)
    assert (fingerprint(*change(features)) == before) is same


def test_the_same_features_in_another_workspace_do_not_share_checkpoints(features, tmp_path):
    other = tmp_path / "clone"
    other.mkdir()
    copies = []
    for path in features:
        copies.append(other / path.name)
        copies[-1].write_bytes(path.read_bytes())
    assert fingerprint(_cfg(), copies, 1) != fingerprint(_cfg(), features, 1)


def test_rng_states_round_trip():
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.standard_normal()  # a cached Gaussian inside NumPy's state
    state = capture_rng()
    draws = (random.random(), np.random.standard_normal(3).tolist(), torch.rand(3).tolist())
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    restore_rng(state)
    assert (random.random(), np.random.standard_normal(3).tolist(), torch.rand(3).tolist()) == draws


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_cuda_rng_state_round_trips():
    torch.cuda.manual_seed(5)
    torch.rand(1, device="cuda")
    state = capture_rng()
    draws = torch.rand(4, device="cuda").tolist()
    torch.cuda.manual_seed(6)
    restore_rng(state)
    assert torch.rand(4, device="cuda").tolist() == draws


def test_store_saves_atomically_and_loads_with_weights_only(tmp_path, monkeypatch):
    store = CheckpointStore.under(tmp_path, "abc")
    assert store.load() is None
    payload = {"epoch": 2, "model": {"w": torch.arange(3.0)}, "rng": [capture_rng()], "history": [{"x": 1.5}]}
    store.save(payload)
    store.save({**payload, "epoch": 3})
    assert [p.name for p in store.directory.iterdir()] == ["checkpoint.pt"]  # no temporary files left

    calls = []
    real_load = torch.load
    monkeypatch.setattr(checkpoint.torch, "load", lambda *a, **k: calls.append(k) or real_load(*a, **k))
    loaded = store.load()
    assert calls == [{"map_location": "cpu", "weights_only": True}]
    assert loaded["epoch"] == 3 and torch.equal(loaded["model"]["w"], torch.arange(3.0))
    restore_rng(loaded["rng"][0])


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


@pytest.mark.parametrize(
    "write",
    [
        lambda path: path.write_bytes(pickle.dumps({"version": 1, "obj": _Payload()}, protocol=2)),
        lambda path: torch.save({"version": 99, "epoch": 1}, path),
        lambda path: path.write_bytes(b"truncated"),
    ],
    ids=["arbitrary-object", "other-version", "damaged"],
)
def test_unusable_checkpoints_are_ignored(tmp_path, write, capsys, caplog):
    store = CheckpointStore.under(tmp_path, "abc")
    store.directory.mkdir(parents=True)
    write(store.path)
    assert store.load() is None
    assert "must never run" not in capsys.readouterr().out
    assert "ignoring checkpoint" in caplog.text


def test_run_marker_and_clear(tmp_path):
    store = CheckpointStore.under(tmp_path, "abc")
    assert store.read_run_id() is None
    store.write_run_id("run-1")
    assert store.read_run_id() == "run-1"
    store.clear()
    assert not store.directory.exists() and store.read_run_id() is None


def test_prune_siblings_removes_only_stale_folders(tmp_path):
    import os
    import time

    stores = {name: CheckpointStore.under(tmp_path, name) for name in ("current", "fresh", "stale")}
    for store in stores.values():
        store.write_run_id("r")
    old = time.time() - checkpoint.STALE_AFTER_S - 60
    os.utime(stores["stale"].directory, (old, old))
    assert stores["current"].prune_siblings() == [stores["stale"].directory]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["current", "fresh"]
