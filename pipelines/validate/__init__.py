"""Validate: the Great Expectations gate between landed and validated events."""

from pipelines.validate.stage import ExpectationsFileError, ValidationFailed, describe_rejections, run

__all__ = ["run", "describe_rejections", "ValidationFailed", "ExpectationsFileError"]
