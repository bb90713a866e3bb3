"""Featurize: the training window (snapshot), the time split and the preprocessing fitted on train.

Public: :func:`run` (the featurize stage), :mod:`~pipelines.featurize.snapshot` (the snapshot stage),
the window selection the drift check shares, and :class:`Preprocessor`, which the model carries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.common.exports import lazy_exports

if TYPE_CHECKING:
    from pipelines.featurize import snapshot
    from pipelines.featurize.preprocess import Preprocessor, run
    from pipelines.featurize.snapshot import Window, read_validated, select_window

_API = {
    "run": "preprocess",
    "snapshot": "snapshot",
    "Preprocessor": "preprocess",
    "Window": "snapshot",
    "select_window": "snapshot",
    "read_validated": "snapshot",
}
__all__ = ["Preprocessor", "Window", "read_validated", "run", "select_window", "snapshot"]
__getattr__ = lazy_exports(__name__, _API)
