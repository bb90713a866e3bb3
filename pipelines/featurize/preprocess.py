"""The preprocessing fitted on the train split and carried by the model.

:class:`Preprocessor` is fitted on train only and saved as a JSON spec; it
applies that spec identically at training and at serving time, to raw rows that
may carry unknown categories, missing optional values or extra columns. It is
loaded wherever the model is, so this module imports nothing heavier than pandas.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipelines.common.errors import FlywheelError

if TYPE_CHECKING:
    from pipelines.common.config import Schema

SPEC_VERSION = 1


class FeaturizeError(FlywheelError, ValueError):
    """The snapshot cannot be turned into train/valid/test features."""


class MissingFeatureError(FlywheelError, KeyError):
    """A raw frame lacks a required feature column."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class NumericSpec:
    """How one numeric column is clipped, imputed and standardized."""

    name: str
    required: bool
    median: float
    mean: float
    std: float
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class CategoricalSpec:
    """How one categorical column is encoded: code ``i + 1`` for ``vocabulary[i]``, 0 for unknown."""

    name: str
    required: bool
    vocabulary: tuple[str, ...]

    @property
    def cardinality(self) -> int:
        """Number of codes, the unknown/missing code 0 included."""
        return len(self.vocabulary) + 1


# -- fitting the preprocessing -----------------------------------------------------------------


def _as_float(values: pd.Series) -> np.ndarray:
    floats: np.ndarray = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    return floats


def _clip(values: np.ndarray, low: float | None, high: float | None) -> np.ndarray:
    if low is None and high is None:
        return values
    clipped: np.ndarray = np.clip(values, -np.inf if low is None else low, np.inf if high is None else high)
    return clipped


def fit_numeric(
    values: pd.Series, name: str, required: bool, low: float | None, high: float | None
) -> NumericSpec:
    """Median, mean and std of the clipped, imputed train values (std 0 → 1)."""
    x = _clip(_as_float(values), low, high)
    present = x[~np.isnan(x)]
    median = float(np.median(present)) if present.size else 0.0
    filled = np.where(np.isnan(x), median, x)
    std = float(filled.std())
    return NumericSpec(
        name=name,
        required=required,
        median=median,
        mean=float(filled.mean()),
        std=std if std > 0 and np.isfinite(std) else 1.0,
        min=low,
        max=high,
    )


def fit_vocabulary(values: pd.Series, min_count: int) -> tuple[str, ...]:
    """Sorted train values seen at least ``min_count`` times (missing values excluded)."""
    counts = values.dropna().astype("string").value_counts()
    return tuple(sorted(str(v) for v in counts[counts >= min_count].index))


@dataclass(frozen=True)
class Preprocessor:
    """The fitted preprocessing: raw rows in, model arrays out, identical at training and serving."""

    numeric: tuple[NumericSpec, ...]
    categorical: tuple[CategoricalSpec, ...]
    key: str
    event_time: str
    target: str
    task: str = "binary"
    classes: tuple[str, ...] = ()  # multiclass: the labels, code i is classes[i]
    target_mean: float = 0.0  # regression: the train target's mean and std, the network's scale
    target_std: float = 1.0

    @classmethod
    def fit(cls, train: pd.DataFrame, schema: Schema, min_category_count: int) -> Preprocessor:
        """Fit every column's spec on the train split only (and a regression target's scale)."""
        numeric = tuple(fit_numeric(train[c.name], c.name, c.required, c.min, c.max) for c in schema.numeric)
        categorical = tuple(
            CategoricalSpec(c.name, c.required, fit_vocabulary(train[c.name], min_category_count))
            for c in schema.categorical
        )
        mean, std = 0.0, 1.0
        if schema.task == "regression":
            y = train[schema.target].to_numpy(dtype=np.float64)
            mean, std = float(y.mean()), float(y.std()) or 1.0
        return cls(
            numeric,
            categorical,
            schema.key,
            schema.event_time,
            schema.target,
            schema.task,
            tuple(schema.classes or ()),
            mean,
            std,
        )

    @property
    def feature_order(self) -> tuple[str, ...]:
        """Model input order: numeric columns, then categorical ones."""
        return tuple(s.name for s in self.numeric) + tuple(s.name for s in self.categorical)

    @property
    def cardinalities(self) -> tuple[int, ...]:
        """Embedding table size of each categorical column (unknown code included)."""
        return tuple(s.cardinality for s in self.categorical)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able spec written to ``preprocess.json``."""
        return {
            "version": SPEC_VERSION,
            "key": self.key,
            "event_time": self.event_time,
            "target": self.target,
            "feature_order": list(self.feature_order),
            "numeric": [asdict(s) for s in self.numeric],
            "categorical": [{**asdict(s), "vocabulary": list(s.vocabulary)} for s in self.categorical],
            **self._task_dict(),
        }

    def _task_dict(self) -> dict[str, Any]:
        """The task's keys of the spec; none for binary (its spec is what it always was)."""
        if self.task == "binary":
            return {}
        out: dict[str, Any] = {"task": self.task}
        if self.task == "multiclass":
            out["classes"] = list(self.classes)
        if self.task == "regression":
            out |= {"target_mean": self.target_mean, "target_std": self.target_std}
        return out

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> Preprocessor:
        """Rebuild the preprocessor from its spec (the inverse of :meth:`to_dict`)."""
        try:
            numeric = tuple(NumericSpec(**s) for s in spec["numeric"])
            categorical = tuple(
                CategoricalSpec(s["name"], s["required"], tuple(s["vocabulary"])) for s in spec["categorical"]
            )
            return cls(
                numeric,
                categorical,
                spec["key"],
                spec["event_time"],
                spec["target"],
                spec.get("task", "binary"),
                tuple(spec.get("classes", ())),
                float(spec.get("target_mean", 0.0)),
                float(spec.get("target_std", 1.0)),
            )
        except (KeyError, TypeError) as exc:
            raise FeaturizeError(
                f"invalid preprocessing spec: {exc!r}; expected the output of to_dict()"
            ) from None

    @classmethod
    def load(cls, path: str | Path) -> Preprocessor:
        """Read a ``preprocess.json`` file."""
        return cls.from_dict(json.loads(Path(path).read_text()))

    def check_columns(self, raw: pd.DataFrame) -> None:
        """Raise :class:`MissingFeatureError` naming any required feature column ``raw`` lacks."""
        specs: tuple[NumericSpec | CategoricalSpec, ...] = (*self.numeric, *self.categorical)
        required = [s.name for s in specs if s.required]
        missing = [name for name in required if name not in raw.columns]
        if missing:
            raise MissingFeatureError(
                f"raw rows lack required feature column(s) {missing}; "
                f"expected columns {list(self.feature_order)}"
            )

    def transform_numeric(self, raw: pd.DataFrame) -> np.ndarray:
        """Clipped, imputed, standardized numerics as float32 ``[n, n_numeric]``."""
        out = np.empty((len(raw), len(self.numeric)), dtype=np.float32)
        for j, s in enumerate(self.numeric):
            x = _as_float(raw[s.name]) if s.name in raw.columns else np.full(len(raw), np.nan)
            x = _clip(x, s.min, s.max)
            out[:, j] = (np.where(np.isnan(x), s.median, x) - s.mean) / s.std
        return out

    def transform_categorical(self, raw: pd.DataFrame) -> np.ndarray:
        """Category codes as int64 ``[n, n_categorical]``: 0 for unknown or missing."""
        out = np.zeros((len(raw), len(self.categorical)), dtype=np.int64)
        for j, s in enumerate(self.categorical):
            if s.name in raw.columns:
                codes = pd.Categorical(raw[s.name].astype("string"), categories=list(s.vocabulary)).codes
                out[:, j] = codes.astype(np.int64) + 1
        return out

    def transform(self, raw: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Raw rows → ``(numeric float32 [n, n_num], categorical int64 [n, n_cat])``."""
        self.check_columns(raw)
        return self.transform_numeric(raw), self.transform_categorical(raw)

    def features_frame(self, raw: pd.DataFrame) -> pd.DataFrame:
        """The features table of a split: numeric float32, categorical int64, the target encoded per task
        (binary int8, a multiclass label's code int64, a regression target float64 as it is)."""
        numeric, categorical = self.transform(raw)
        columns: dict[str, np.ndarray] = {s.name: numeric[:, j] for j, s in enumerate(self.numeric)}
        columns |= {s.name: categorical[:, j] for j, s in enumerate(self.categorical)}
        columns[self.target] = self.encode_target(raw[self.target])
        return pd.DataFrame(columns)

    def encode_target(self, values: pd.Series) -> np.ndarray:
        """Raw target values as the model learns them; :class:`FeaturizeError` for an unknown class."""
        if self.task == "regression":
            return np.asarray(values.to_numpy(dtype="float64"))
        if self.task == "multiclass":
            codes = pd.Categorical(values.astype("string"), categories=list(self.classes)).codes
            if (codes < 0).any():
                unknown = sorted(set(values[codes < 0].astype(str)))[:5]
                raise FeaturizeError(
                    f"target {self.target!r} holds {unknown}, not among schema.classes {list(self.classes)}"
                )
            return np.asarray(codes, dtype="int64")
        return np.asarray(values.to_numpy(dtype="int8"))

    def split_features(self, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A features table → ``(numeric, categorical, target)`` arrays in model order."""
        numeric = features[[s.name for s in self.numeric]].to_numpy(dtype=np.float32)
        categorical = features[[s.name for s in self.categorical]].to_numpy(dtype=np.int64)
        return (
            numeric.reshape(len(features), -1),
            categorical.reshape(len(features), -1),
            features[self.target].to_numpy(dtype=np.int64 if self.task == "multiclass" else np.float32),
        )
