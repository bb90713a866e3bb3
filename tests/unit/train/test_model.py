"""The saved model: the model files, the Predictor and the pyfunc wrapper on raw rows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from pipelines import featurize
from pipelines.featurize.stage import build_features
from pipelines.train import model
from pipelines.train.model import Predictor, read_model_json, save_model_files
from pipelines.train.network import build_net
from tests.support.data import churn_events, churn_params
from tests.support.install import ROOT


@pytest.fixture(scope="module")
def preprocessor() -> featurize.Preprocessor:
    params = churn_params()
    return build_features(churn_events(), params.schema, params.featurize).preprocessor


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


def test_model_files_round_trip(model_dir, preprocessor):
    predictor = Predictor.load(model_dir)
    assert predictor.threshold == 0.4
    assert predictor.meta["feature_order"] == ["tenure", "support_calls", "plan"]
    assert predictor.meta["architecture"]["cardinalities"] == [4]
    assert predictor.preprocessor == preprocessor
    state = torch.load(model_dir / "state_dict.pt", weights_only=True)
    assert set(state) == set(predictor.net.state_dict())
    assert read_model_json(model_dir) == predictor.meta


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


@pytest.mark.parametrize("module", ["pipelines.train.model", "pipelines.train.network"])
def test_importing_the_model_does_not_import_mlflow(module):
    code = f"import sys, {module}; print('mlflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
