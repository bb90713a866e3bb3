"""The stack's error: a part of the production topology could not be installed, started or stopped."""

from __future__ import annotations

from pipelines.common.errors import FlywheelError


class StackError(FlywheelError):
    """A part of the stack failed; the message names the part, what happened and what to do."""
