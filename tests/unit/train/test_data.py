"""Training data: the features as tensors, their shards across processes, the files a checkpoint hashes."""

from __future__ import annotations

from dataclasses import fields

import pytest
import torch

from pipelines import featurize
from pipelines.train.data import feature_files, load_training_data
from pipelines.train.errors import TrainError
from tests.support.data import churn_events, churn_params, training_data, write_snapshot


def test_shards_are_disjoint_equal_and_cover_the_time_range():
    data, _ = training_data(1000)
    shards = [data.shard(rank, 3) for rank in range(3)]
    sizes = {s.n_train for s in shards}
    assert sizes == {data.n_train // 3}
    rows = [tuple(r.tolist()) for s in shards for r in s.train_numeric]
    assert len(set(rows)) == len(rows) == 3 * (data.n_train // 3)
    assert torch.equal(shards[1].train_numeric[0], data.train_numeric[1])  # strided, not blocks
    assert all(s.valid_target is data.valid_target for s in shards)
    assert data.shard(0, 1) is data


def test_tensors_have_the_model_dtypes_and_sizes():
    data, pre = training_data(1000)
    tensors = [getattr(data, f.name) for f in fields(data)]
    assert [t.dtype for t in tensors] == [torch.float32, torch.int64, torch.float32] * 2
    assert data.train_numeric.shape == (data.n_train, len(pre.numeric))
    assert data.valid_categorical.shape == (data.n_valid, len(pre.categorical))
    assert data.nbytes == sum(t.nbytes for t in tensors)


def test_load_training_data_reads_the_featurized_workspace(tmp_path):
    params = churn_params()
    write_snapshot(tmp_path, churn_events(600))
    featurize.run(params, None, tmp_path)
    data, pre = load_training_data(tmp_path)
    assert data.n_train == 420 and data.n_valid == 90
    assert pre.feature_order == ("tenure", "support_calls", "plan")
    assert all(path.exists() for path in feature_files(tmp_path))


def test_load_training_data_without_features_names_the_file(tmp_path):
    with pytest.raises(TrainError, match=r"preprocess.json not found; expected the featurize stage"):
        load_training_data(tmp_path)


def test_feature_files_are_the_inputs_a_checkpoint_hashes(tmp_path):
    names = [p.relative_to(tmp_path).as_posix() for p in feature_files(tmp_path)]
    assert names == [
        "data/features/train.parquet",
        "data/features/valid.parquet",
        "data/features/preprocess.json",
    ]
