"""The saved model: its files on disk, the :class:`Predictor` that scores raw rows, and the MLflow pyfunc.

``models/model/`` holds three files: ``state_dict.pt`` (the weights, loaded with
``weights_only=True``), ``preprocess.json`` (the fitted preprocessing spec) and
``model.json`` (architecture, feature order, decision threshold, MLflow
lineage). :class:`Predictor` rebuilds the network from those files and scores raw
rows; :class:`FlywheelPyfunc` wraps it for MLflow, so a logged model accepts
the same raw rows the lake holds. MLflow is imported only when the pyfunc class
is first used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from pipelines.featurize import Preprocessor
from pipelines.train.network import architecture, rebuild

STATE_DICT = "state_dict.pt"
PREPROCESS = "preprocess.json"
MODEL_JSON = "model.json"  # the files of a model folder: models/model/ in the workspace, artifacts in MLflow
ARTIFACT_FILES = {"state_dict": STATE_DICT, "preprocess": PREPROCESS, "model_json": MODEL_JSON}
SCORE_BATCH = 65536


# -- files on disk -------------------------------------------------------------------------------


def save_model_files(
    model_dir: Path, net: nn.Module, preprocessor: Preprocessor, meta: dict[str, Any]
) -> dict[str, str]:
    """Write ``state_dict.pt``, ``preprocess.json`` and ``model.json``; return ``{artifact: path}``."""
    model_dir.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, model_dir / STATE_DICT)
    (model_dir / PREPROCESS).write_text(json.dumps(preprocessor.to_dict(), indent=2) + "\n")
    write_model_json(
        model_dir,
        {"architecture": architecture(net), "feature_order": list(preprocessor.feature_order), **meta},
    )
    return {name: str(model_dir / file) for name, file in ARTIFACT_FILES.items()}


def write_model_json(model_dir: Path, meta: dict[str, Any]) -> None:
    """Write ``model.json`` (architecture, threshold, lineage)."""
    (model_dir / MODEL_JSON).write_text(json.dumps(meta, indent=2) + "\n")


def read_model_json(model_dir: Path) -> dict[str, Any]:
    """Read ``model.json`` of a model folder."""
    meta: dict[str, Any] = json.loads((model_dir / MODEL_JSON).read_text())
    return meta


# -- the predictor -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Predictor:
    """A trained model with its preprocessing: raw rows in, probabilities out (CPU)."""

    net: nn.Module
    preprocessor: Preprocessor
    threshold: float
    meta: dict[str, Any]

    @classmethod
    def from_files(cls, state_dict: str | Path, preprocess: str | Path, model_json: str | Path) -> Predictor:
        """Rebuild from the three model files (the MLflow artifacts or ``models/model/``)."""
        meta = json.loads(Path(model_json).read_text())
        net = rebuild(meta["architecture"])  # the built-in network, or the factory's (imported here)
        net.load_state_dict(torch.load(state_dict, map_location="cpu", weights_only=True))
        net.eval()
        return cls(net, Preprocessor.load(preprocess), float(meta["threshold"]), meta)

    @classmethod
    def load(cls, model_dir: str | Path) -> Predictor:
        """Rebuild from a model folder such as ``models/model/``."""
        d = Path(model_dir)
        return cls.from_files(d / STATE_DICT, d / PREPROCESS, d / MODEL_JSON)

    @property
    def task(self) -> str:
        """``binary``, ``multiclass`` or ``regression``: what the network's outputs mean."""
        return self.preprocessor.task

    def score(self, numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        """For already-transformed model arrays: probabilities (float64 ``[n]``) of a binary model,
        class probabilities ``[n, k]`` of a multiclass one, predictions ``[n]`` on the target's scale."""
        if self.task != "binary":
            return self._score_task(numeric, categorical)
        out = np.empty(len(numeric), dtype=np.float64)
        with torch.inference_mode():
            for start in range(0, len(numeric), SCORE_BATCH):
                stop = start + SCORE_BATCH
                logits = self.net(
                    torch.from_numpy(numeric[start:stop]), torch.from_numpy(categorical[start:stop])
                )
                out[start:stop] = torch.sigmoid(logits).double().numpy()
        return out

    def _score_task(self, numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        pre, chunks = self.preprocessor, []
        with torch.inference_mode():
            for start in range(0, len(numeric), SCORE_BATCH):
                stop = start + SCORE_BATCH
                logits = self.net(
                    torch.from_numpy(numeric[start:stop]), torch.from_numpy(categorical[start:stop])
                ).double()
                chunks.append(
                    torch.softmax(logits, dim=1).numpy()
                    if self.task == "multiclass"
                    else logits.numpy() * pre.target_std + pre.target_mean
                )
        width = (0, len(pre.classes)) if self.task == "multiclass" else (0,)
        return np.concatenate(chunks) if chunks else np.empty(width, dtype=np.float64)

    def predict_proba(self, raw: pd.DataFrame) -> np.ndarray:
        """Probabilities (float64 ``[n]``) for raw rows, preprocessing included."""
        numeric, categorical = self.preprocessor.transform(raw)
        return self.score(numeric, categorical)

    def predict(self, raw: pd.DataFrame) -> pd.DataFrame:
        """For raw rows: ``probability`` and ``label`` (at the model's threshold) of a binary model;
        ``label`` (the class), its ``probability`` and ``proba_<class>`` per class of a multiclass one;
        ``prediction`` of a regression model."""
        scores = self.predict_proba(raw)
        if self.task == "regression":
            return pd.DataFrame({"prediction": scores})
        if self.task == "multiclass":
            classes = np.array(self.preprocessor.classes, dtype=object)
            best = scores.argmax(axis=1) if len(scores) else np.empty(0, dtype=np.int64)
            return pd.DataFrame(
                {
                    "label": classes[best],
                    "probability": scores.max(axis=1) if len(scores) else np.empty(0),
                    **{f"proba_{c}": scores[:, i] for i, c in enumerate(self.preprocessor.classes)},
                }
            )
        return pd.DataFrame({"probability": scores, "label": (scores >= self.threshold).astype(np.int64)})


def prediction_scores(predicted: pd.DataFrame, classes: tuple[str, ...] | None = None) -> np.ndarray:
    """What the gate and the drift check score from a pyfunc's output: ``probability`` of a binary
    model, the ``proba_<class>`` columns ``[n, k]`` of a multiclass one (``classes`` given),
    ``prediction`` of a regression one."""
    if classes:
        return np.asarray(predicted[[f"proba_{c}" for c in classes]], dtype=float)
    column = "prediction" if "prediction" in predicted.columns else "probability"
    return np.asarray(predicted[column], dtype=float)


# -- MLflow pyfunc (created on first use, so importing this module does not import MLflow) ----------


def _make_pyfunc_class() -> type[Any]:
    from mlflow.pyfunc.model import PythonModel

    class FlywheelPyfunc(PythonModel):
        """MLflow pyfunc serving raw rows: preprocessing, network and threshold inside."""

        def load_context(self, context: Any) -> None:
            """Build the :class:`Predictor` from the logged artifacts."""
            a = context.artifacts
            self.predictor = Predictor.from_files(a["state_dict"], a["preprocess"], a["model_json"])

        def predict(
            self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
        ) -> pd.DataFrame:
            """Raw rows → ``probability`` (float) and ``label`` (int) columns (per task: see
            :meth:`Predictor.predict`)."""
            return self.predictor.predict(pd.DataFrame(model_input))

    FlywheelPyfunc.__qualname__ = "FlywheelPyfunc"
    return FlywheelPyfunc


def __getattr__(name: str) -> Any:
    """Create ``FlywheelPyfunc`` lazily (PEP 562); it pickles by reference as
    ``pipelines.train.model.FlywheelPyfunc``."""
    if name == "FlywheelPyfunc":
        cls = globals()[name] = _make_pyfunc_class()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
