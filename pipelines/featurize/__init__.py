"""Featurize: the training window (snapshot), the time split and the preprocessing fitted on train.

Public: :func:`run` (the featurize stage), :mod:`~pipelines.featurize.snapshot` (the snapshot stage),
the window selection the drift check shares (:class:`Window`, :func:`select_window`,
:func:`read_validated`), the training window policy and the featurize core the backtest replays
(:func:`training_window`, :func:`newest_rows`, :func:`build_features`), and :class:`Preprocessor`, which
the model carries, with its errors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.common.exports import lazy_exports

if TYPE_CHECKING:
    from pipelines.featurize import snapshot
    from pipelines.featurize.preprocess import FeaturizeError, MissingFeatureError, Preprocessor
    from pipelines.featurize.stage import build_features, run
    from pipelines.featurize.window import Window, newest_rows, read_validated, select_window, training_window

_API = {
    "run": "stage",
    "snapshot": "snapshot",
    "Preprocessor": "preprocess",
    "FeaturizeError": "preprocess",
    "MissingFeatureError": "preprocess",
    "Window": "window",
    "select_window": "window",
    "read_validated": "window",
    "training_window": "window",
    "newest_rows": "window",
    "build_features": "stage",
}
__all__ = [
    "FeaturizeError",
    "MissingFeatureError",
    "Preprocessor",
    "Window",
    "build_features",
    "newest_rows",
    "read_validated",
    "run",
    "select_window",
    "snapshot",
    "training_window",
]
__getattr__ = lazy_exports(__name__, _API)
