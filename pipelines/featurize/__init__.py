"""Featurize: the training window (snapshot), the time split and the preprocessing fitted on train.

Public: :func:`run` (the featurize stage), :mod:`~pipelines.featurize.snapshot` (the snapshot stage),
the window selection the drift check shares (:class:`Window`, :func:`select_window`,
:func:`read_validated`), and :class:`Preprocessor`, which the model carries, with its errors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.common.exports import lazy_exports

if TYPE_CHECKING:
    from pipelines.featurize import snapshot
    from pipelines.featurize.preprocess import FeaturizeError, MissingFeatureError, Preprocessor
    from pipelines.featurize.stage import run
    from pipelines.featurize.window import Window, read_validated, select_window

_API = {
    "run": "stage",
    "snapshot": "snapshot",
    "Preprocessor": "preprocess",
    "FeaturizeError": "preprocess",
    "MissingFeatureError": "preprocess",
    "Window": "window",
    "select_window": "window",
    "read_validated": "window",
}
__all__ = [
    "FeaturizeError",
    "MissingFeatureError",
    "Preprocessor",
    "Window",
    "read_validated",
    "run",
    "select_window",
    "snapshot",
]
__getattr__ = lazy_exports(__name__, _API)
