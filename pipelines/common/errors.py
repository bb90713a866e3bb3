"""Flywheel's errors: one base the CLI and the DAG tasks catch, and the kinds every stage shares.

Each stage defines its own subclasses next to its code (``TrainError``, ``IngestError``, ...); a message
names the thing, the value and what was expected.
"""

from __future__ import annotations

from typing import Any

EXIT_FAILED, EXIT_REJECTED = 2, 3


class FlywheelError(Exception):
    """Something Flywheel refuses or cannot do, said in a message a person can act on.

    ``exit_code`` is what ``flywheel <command>`` exits with; ``summary`` (when set) is added to the
    command's JSON summary.
    """

    exit_code = EXIT_FAILED
    summary: dict[str, Any] | None = None


class ParamsError(FlywheelError, ValueError):
    """An invalid parameter file, form or override: names the key, the value and what was expected."""


class RejectedError(FlywheelError):
    """Data that a gate rejected (exit status 3): nothing went wrong, the data did not pass."""

    exit_code = EXIT_REJECTED
