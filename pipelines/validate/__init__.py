"""Validate: the Great Expectations gate between landed and validated events.

Modules: :mod:`.suite` (schema → GX expectations), :mod:`.gate` (the verdict on one batch) and
:mod:`.stage` (:func:`run` over the lake's landed partitions). The backtest runs the gate on each step's
frame: :func:`validate_frame`, :func:`describe_failure`, :func:`load_extra_expectations`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from pipelines.common.exports import lazy_exports

# Before any module of this package imports GX (suite, gate): no usage statistics unless asked for.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

if TYPE_CHECKING:
    from pipelines.validate.docs import log_data_docs
    from pipelines.validate.gate import (
        ValidationFailed,
        describe_failure,
        describe_rejections,
        validate_frame,
    )
    from pipelines.validate.stage import run
    from pipelines.validate.suite import ExpectationsFileError, load_extra_expectations

_API = {
    "run": "stage",
    "describe_rejections": "gate",
    "ValidationFailed": "gate",
    "ExpectationsFileError": "suite",
    "validate_frame": "gate",
    "describe_failure": "gate",
    "load_extra_expectations": "suite",
    "log_data_docs": "docs",
}
__all__ = [
    "ExpectationsFileError",
    "ValidationFailed",
    "describe_failure",
    "describe_rejections",
    "load_extra_expectations",
    "log_data_docs",
    "run",
    "validate_frame",
]
__getattr__ = lazy_exports(__name__, _API)
