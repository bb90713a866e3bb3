"""Validate: the Great Expectations gate between landed and validated events."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.common.exports import lazy_exports

if TYPE_CHECKING:
    from pipelines.validate.stage import ExpectationsFileError, ValidationFailed, describe_rejections, run

_API = {
    "run": "stage",
    "describe_rejections": "stage",
    "ValidationFailed": "stage",
    "ExpectationsFileError": "stage",
}
__all__ = ["ExpectationsFileError", "ValidationFailed", "describe_rejections", "run"]
__getattr__ = lazy_exports(__name__, _API)
