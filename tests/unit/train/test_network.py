"""The tabular network, the model files, the Predictor and the pyfunc wrapper on raw rows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from pipelines.featurize import preprocess as featurize
from pipelines.train import network as model
from pipelines.train.network import Predictor, TabularNet, build_net, embedding_dim, save_model_files
from tests.support.data import churn_events, churn_params
from tests.support.install import ROOT


@pytest.fixture(scope="module")
def preprocessor() -> featurize.Preprocessor:
    params = churn_params()
    return featurize.build_features(churn_events(), params.schema, params.featurize).preprocessor


@pytest.fixture
def model_dir(tmp_path, preprocessor) -> Path:
    torch.manual_seed(0)
    net = build_net(preprocessor, hidden=(8, 4), dropout=0.1, max_embedding_dim=4)
    save_model_files(tmp_path / "model", net, preprocessor, {"threshold": 0.4, "mlflow_run_id": "r1"})
    return tmp_path / "model"


RAW = pd.DataFrame(
    {
        "tenure": [3.0, 60.0, None],
        "plan": ["basic", "platinum", "max"],  # "platinum" was never seen in training
        "support_calls": pd.array([5, None, 0], dtype="Int64"),
        "customer_id": ["x", "y", "z"],
    }
)


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


def test_model_files_round_trip(model_dir, preprocessor):
    predictor = Predictor.load(model_dir)
    assert predictor.threshold == 0.4
    assert predictor.meta["feature_order"] == ["tenure", "support_calls", "plan"]
    assert predictor.meta["architecture"]["cardinalities"] == [4]
    assert predictor.preprocessor == preprocessor
    state = torch.load(model_dir / "state_dict.pt", weights_only=True)
    assert set(state) == set(predictor.net.state_dict())


def test_predictor_scores_raw_rows(model_dir):
    predictor = Predictor.load(model_dir)
    proba = predictor.predict_proba(RAW)
    assert proba.shape == (3,) and proba.dtype == np.float64
    assert ((proba > 0) & (proba < 1)).all()
    numeric, categorical = predictor.preprocessor.transform(RAW)
    with torch.no_grad():
        direct = torch.sigmoid(predictor.net(torch.from_numpy(numeric), torch.from_numpy(categorical)))
    assert np.allclose(proba, direct.numpy(), atol=1e-6)
    out = predictor.predict(RAW)
    assert out.columns.tolist() == ["probability", "label"]
    assert out.label.tolist() == (proba >= 0.4).astype(int).tolist()


def test_predictor_names_a_missing_required_column(model_dir):
    with pytest.raises(featurize.MissingFeatureError, match=r"\['plan'\]"):
        Predictor.load(model_dir).predict_proba(RAW.drop(columns="plan"))


def test_pyfunc_predicts_from_its_artifacts(model_dir):
    artifacts = {name: str(model_dir / file) for name, file in model.ARTIFACT_FILES.items()}
    pyfunc = model.FlywheelPyfunc()
    pyfunc.load_context(SimpleNamespace(artifacts=artifacts))
    out = pyfunc.predict(None, RAW)
    assert out.columns.tolist() == ["probability", "label"]
    assert out.label.dtype == np.int64
    assert np.allclose(out.probability, Predictor.load(model_dir).predict_proba(RAW))


def test_importing_the_model_does_not_import_mlflow():
    code = "import sys, pipelines.train.network; print('mlflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
