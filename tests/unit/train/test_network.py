"""The default network: embedding widths, one logit per row, and the factory the stage builds it through."""

from __future__ import annotations

import pytest
import torch

from pipelines.train.network import TabularNet, build_net, default_net, embedding_dim, net_factory
from tests.support.data import churn_params, training_data


@pytest.mark.parametrize(
    ("cardinality", "max_dim", "expected"),
    [(2, 16, 2), (4, 16, 3), (11, 16, 7), (100, 16, 16), (100, 4, 4)],
)
def test_embedding_dim(cardinality, max_dim, expected):
    assert embedding_dim(cardinality, max_dim) == expected


@pytest.mark.parametrize(
    ("n_numeric", "cardinalities"),
    [(3, (4, 11)), (2, ()), (0, (5,))],
    ids=["both", "numeric-only", "categorical-only"],
)
def test_forward_gives_one_logit_per_row(n_numeric, cardinalities):
    net = TabularNet(n_numeric, cardinalities, hidden=(16, 8), dropout=0.2, max_embedding_dim=4)
    numeric = torch.randn(7, n_numeric)
    categorical = (
        torch.stack([torch.randint(0, c, (7,)) for c in cardinalities], dim=1)
        if cardinalities
        else torch.zeros(7, 0, dtype=torch.long)
    )
    assert net(numeric, categorical).shape == (7,)
    assert [e.embedding_dim for e in net.embeddings] == [embedding_dim(c, 4) for c in cardinalities]


def test_the_default_factory_builds_the_net_the_train_params_describe():
    cfg = churn_params(train={"hidden": [8, 4], "dropout": 0.3, "max_embedding_dim": 2}).train
    _, pre = training_data(300)
    assert net_factory(cfg) is default_net
    torch.manual_seed(0)
    net = net_factory(cfg)(pre, cfg)
    torch.manual_seed(0)
    same = build_net(pre, (8, 4), 0.3, 2)
    assert (
        net.config
        == same.config
        == {
            "n_numeric": 2,
            "cardinalities": [4],
            "hidden": [8, 4],
            "dropout": 0.3,
            "max_embedding_dim": 2,
        }
    )
    assert all(
        torch.equal(a, b) for a, b in zip(net.state_dict().values(), same.state_dict().values(), strict=True)
    )
