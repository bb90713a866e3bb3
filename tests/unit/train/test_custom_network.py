"""A team's own network through ``train.model``: the spec it gets, the model files, and every way a bad
factory is refused, naming the factory and what was expected."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

from pipelines.common.config import ParamsError, parse_params, read_params_dict
from pipelines.train.model import Predictor, save_model_files
from pipelines.train.network import (
    FeatureSpec,
    ModelFactoryError,
    check_network,
    custom_net,
    net_factory,
    rebuild,
)
from pipelines.train.tracking import factory_code, model_tags
from pipelines.workspace.model_code import BUILTIN, model_code_text
from tests.support.data import churn_events, churn_params, training_data
from tests.support.install import ROOT

FACTORIES = """
import torch
from torch import nn


class Linear(nn.Module):
    def __init__(self, spec, width, out):
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(c, 2) for c in spec.cardinalities)
        self.body = nn.Linear(len(spec.numeric) + 2 * len(spec.cardinalities), out)
        self.out = out

    def forward(self, numeric, categorical):
        parts = [numeric, *(e(categorical[:, j]) for j, e in enumerate(self.embeddings))]
        logits = self.body(torch.cat(parts, dim=1))
        return logits.squeeze(-1) if self.out == 1 else logits


def good(spec, params):
    return Linear(spec, params.get("width", 4), spec.output_size)


def column(spec, params):
    return Linear(spec, 4, 2)  # [n, 2] where the binary task wants [n]


def raises(spec, params):
    raise ValueError(f"width must be positive, got {params['width']}")


def not_a_module(spec, params):
    return "a network"


class Broken(nn.Module):
    def forward(self, numeric, categorical):
        return numeric @ torch.ones(99)


def broken(spec, params):
    return Broken()


NOT_CALLABLE = 3
"""


@pytest.fixture
def team(tmp_path, monkeypatch):
    """A package ``team_nets`` outside the project, importable as the training process would import it."""
    package = tmp_path / "team_nets"
    package.mkdir()
    (package / "__init__.py").write_text('"""Our networks."""\n')
    (package / "nets.py").write_text(textwrap.dedent(FACTORIES))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield package
    import sys

    for name in [m for m in sys.modules if m == "team_nets" or m.startswith("team_nets.")]:
        del sys.modules[name]


def cfg(model: str | None, **model_params: object):
    return churn_params(train={"model": model, "model_params": model_params}).train


def test_the_spec_describes_the_preprocessors_columns():
    _, pre = training_data(300)
    spec = FeatureSpec.of(pre, max_embedding_dim=2)
    assert spec == FeatureSpec(("tenure", "support_calls"), ("plan",), (4,), (2,), "binary", 1)
    assert FeatureSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.usefixtures("team")
def test_a_custom_network_trains_into_model_files_that_rebuild_it(tmp_path):
    train = cfg("team_nets.nets:good", width=8)
    _, pre = training_data(300)
    assert net_factory(train) is custom_net
    check_network(train, pre)
    net = net_factory(train)(pre, train)
    save_model_files(tmp_path / "model", net, pre, {"threshold": 0.5})
    predictor = Predictor.load(tmp_path / "model")
    assert predictor.meta["architecture"] == {
        "factory": "team_nets.nets:good",
        "model_params": {"width": 8},
        "feature_spec": FeatureSpec.of(pre, train.max_embedding_dim).to_dict(),
    }
    assert all(
        torch.equal(a, b)
        for a, b in zip(net.state_dict().values(), predictor.net.state_dict().values(), strict=True)
    )
    proba = predictor.predict_proba(churn_events(20))
    assert proba.shape == (20,) and ((proba > 0) & (proba < 1)).all()


@pytest.mark.usefixtures("team")
@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("team_nets.absent:good", "cannot import module 'team_nets.absent'"),
        ("team_nets.nets:missing", "module 'team_nets.nets' has no callable 'missing'"),
        ("team_nets.nets:NOT_CALLABLE", "has no callable 'NOT_CALLABLE'"),
        ("team_nets.nets:raises", "the factory raised ValueError: width must be positive, got -1"),
        ("team_nets.nets:not_a_module", "the factory returned str; expected a torch.nn.Module"),
        ("team_nets.nets:column", r"forward returned shape \[2, 2\] for n = 2; expected logits \[n\]"),
        ("team_nets.nets:broken", r"forward\(numeric \[n, 2\], categorical \[n, 1\]\) raised RuntimeError"),
    ],
)
def test_a_bad_factory_is_refused_naming_it(model, expected):
    _, pre = training_data(300)
    with pytest.raises(ModelFactoryError, match=expected) as err:
        check_network(cfg(model, width=-1), pre)
    assert f"train.model = {model!r}" in str(err.value)


@pytest.mark.parametrize("model", ["nets", "team_nets.nets", "team nets:good", "a.b:c:d", ":good"])
def test_a_malformed_model_path_fails_at_load_time(model):
    raw = read_params_dict(ROOT / "params.yaml")
    raw["train"]["model"] = model
    with pytest.raises(
        ParamsError, match=r"train.model = .*expected a network factory as package.module:function"
    ):
        parse_params(raw)


def test_the_builtin_network_rebuilds_from_its_config():
    _, pre = training_data(300)
    train = cfg(None)
    net = net_factory(train)(pre, train)
    assert type(rebuild(net.config)) is type(net)


def test_the_factory_source_for_dvc_and_the_model_code(team):
    assert model_code_text(None) == BUILTIN
    source = (team / "nets.py").read_text()
    assert model_code_text("team_nets.nets:good").endswith(source)
    assert "not found on the Python path" in model_code_text("team_nets.absent:good")
    assert model_tags(None) == {}
    assert model_tags("team_nets.nets:good")["flywheel.model"] == "team_nets.nets:good"
    with factory_code("team_nets.nets:good") as paths:
        (folder,) = paths  # the package as MLflow copies it into the model's code/: importable by name
        assert Path(folder).name == "team_nets"
        assert sorted(p.name for p in Path(folder).iterdir()) == ["__init__.py", "nets.py"]
        assert (Path(folder) / "nets.py").read_text() == source
    with factory_code(None) as paths:
        assert paths == []
