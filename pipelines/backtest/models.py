"""The models of a backtest: trained in-process by the same cores the featurize and train stages call.

A candidate is what ``snapshot → featurize → train → evaluate`` would give for the same logical date:
the window by ``snapshot.window`` (:class:`TrainingWindow` keeps just the rows a later window can
still use), the time split and preprocessing of :func:`~pipelines.featurize.build_features`, the
network of ``train.*`` fitted by :func:`~pipelines.train.train_model`, and its scores on the held-out
test split, where the evaluation gate compares it with the champion. No DVC, no MLflow per step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

import numpy as np
import pandas as pd

from pipelines.common.config import Params, Schema, SnapshotConfig
from pipelines.evaluate.metrics import metric
from pipelines.featurize import Window, build_features, newest_rows, select_window, training_window
from pipelines.train import Predictor, TrainingData, net_factory, train_model


@dataclass
class TrainingWindow:
    """The validated rows the next training windows can still use, given what the clock has seen.

    Windows only move forward, so after each step the rows older than the current window's start
    (and beyond ``snapshot.max_rows``) are dropped: memory holds one training window and one step.
    """

    schema: Schema
    cfg: SnapshotConfig
    first_event: datetime | None = None
    rows: pd.DataFrame | None = None

    def add(self, events: pd.DataFrame, as_of: datetime) -> None:
        """Add one step's validated events, then keep what a window on or after ``as_of`` can use."""
        if not events.empty:
            first = events[self.schema.event_time].min().to_pydatetime()
            self.first_event = min(first, self.first_event or first)
        frames = [f for f in (self.rows, events) if f is not None and not f.empty]
        self.rows, _ = self._select(frames, as_of)

    def select(self, as_of: datetime) -> tuple[pd.DataFrame, Window]:
        """The training rows of a model trained on ``as_of`` and the window they come from."""
        return self._select([self.rows] if self.rows is not None else [], as_of)

    def _select(self, frames: list[pd.DataFrame], as_of: datetime) -> tuple[pd.DataFrame, Window]:
        window = training_window(as_of, self.cfg, self.first_event)
        return newest_rows(select_window(frames, self.schema, window), self.cfg.max_rows), window


@dataclass(frozen=True)
class Model:
    """A model trained at the end of clock step ``step`` (0: the first model), with what judging it needs."""

    name: str
    step: int
    predictor: Predictor
    window: Window
    rows: int
    newest_event: datetime  # the newest event it learned from or was evaluated on
    reference: pd.DataFrame  # the raw train split: the drift check's reference
    test: pd.DataFrame  # the raw test split: where the gate compares it with the champion
    test_proba: np.ndarray = field(repr=False)
    seconds: float = 0.0

    def predict(self, events: pd.DataFrame) -> np.ndarray:
        """Probabilities for raw rows."""
        return self.predictor.predict_proba(events)

    def describe(self) -> dict[str, object]:
        """A JSON-able description (no rows)."""
        return {
            "name": self.name,
            "step": self.step,
            "window_start": self.window.start.isoformat(),
            "window_end": self.window.end.isoformat(),
            "rows": self.rows,
            "newest_event": self.newest_event.isoformat(),
            "seconds": round(self.seconds, 3),
        }


def train_candidate(events: pd.DataFrame, window: Window, params: Params, step: int) -> Model:
    """Featurize and train on one window's rows, as the DAG's stages would, and score its test split.

    Raises:
        FeaturizeError: the window cannot be split or holds one class only.
    """
    started = time.perf_counter()
    schema, cfg = params.schema, params.train
    featurized = build_features(events, schema, params.featurize)
    pre = featurized.preprocessor
    data = TrainingData.from_frames(featurized.features["train"], featurized.features["valid"], pre)
    net, fit, threshold, _ = train_model(cfg, data, partial(net_factory(cfg), pre, cfg))
    predictor = Predictor(net, pre, threshold, {"step": step, "best_epoch": fit.best_epoch})
    numeric, categorical, _ = pre.split_features(featurized.features["test"])
    return Model(
        name=f"m{step:04d}",
        step=step,
        predictor=predictor,
        window=window,
        rows=len(events),
        newest_event=events[schema.event_time].max().to_pydatetime(),
        reference=featurized.splits.train,
        test=featurized.splits.test,
        test_proba=predictor.score(numeric, categorical),
        seconds=time.perf_counter() - started,
    )


def score(model: Model, events: pd.DataFrame, target: str) -> tuple[float, float]:
    """``(roc_auc, pr_auc)`` of ``model`` on labelled events (NaN when they hold one class)."""
    y = events[target].to_numpy(dtype=np.int64)
    proba = model.predict(events)
    return metric("roc_auc", y, proba), metric("pr_auc", y, proba)
