"""The logical clock of a backtest: the origin ``t0`` and steps of whole days after it.

Step ``k`` (1-based) holds the events of ``[t0 + (k - 1) * step, t0 + k * step)``; the decisions of
step ``k`` (drift check, retrain, promotion) are taken at its end, ``t_k``, on what was known before
``t_k``, and the model they leave serving is scored on step ``k + 1``. Steps at or before 0 are the
history before ``t0`` that the first model learns from. Training windows are whole UTC days, so the
origin is a UTC midnight and a step is a whole number of days.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pipelines.backtest.errors import BacktestError

_STEP = re.compile(r"^\s*(\d+)\s*([dw])\s*$")
_UNIT_DAYS = {"d": 1, "w": 7}


def parse_step(text: str) -> timedelta:
    """``30d`` or ``2w`` as a whole number of days.

    Raises:
        BacktestError: anything else (a clock step of hours would cut the training windows' days).
    """
    match = _STEP.match(text or "")
    days = int(match.group(1)) * _UNIT_DAYS[match.group(2)] if match else 0
    if days < 1:
        raise BacktestError(f"--step {text!r}: expected a whole number of days or weeks such as 30d or 2w")
    return timedelta(days=days)


def midnight(moment: datetime) -> datetime:
    """The UTC midnight starting ``moment``'s day (a naive time is taken as UTC)."""
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC)


@dataclass(frozen=True)
class Step:
    """One step of the clock: its events are ``[start, end)``; its decisions are taken at ``end``."""

    index: int
    start: datetime
    end: datetime

    @property
    def as_of(self) -> datetime:
        """The last whole day of the step: a training window for a decision at ``end`` ends with it."""
        return self.end - timedelta(days=1)

    def label(self) -> str:
        """``[2019-01-01, 2019-01-31)``."""
        return f"[{self.start.date().isoformat()}, {self.end.date().isoformat()})"


@dataclass(frozen=True)
class Clock:
    """``steps`` steps of length ``step`` after ``origin`` (a UTC midnight)."""

    origin: datetime
    step: timedelta
    steps: int

    @classmethod
    def between(cls, start: datetime, end: datetime, step: timedelta) -> Clock:
        """The whole steps from ``start``'s midnight up to ``end`` (a trailing part step is left out).

        Raises:
            BacktestError: fewer than two steps fit (one to decide after, one to score on).
        """
        origin = midnight(start)
        end = end.astimezone(UTC) if end.tzinfo else end.replace(tzinfo=UTC)
        count = math.floor((end - origin) / step) if end > origin else 0
        if count < 2:
            raise BacktestError(
                f"the clock from {origin.date().isoformat()} to {end.isoformat()} holds {count} whole "
                f"step(s) of {step.days} days; expected at least 2 (move --start or --end, or shorten --step)"
            )
        return cls(origin, step, count)

    def at(self, index: int) -> Step:
        """Step ``index`` (any integer: 0 and below lie before the origin)."""
        start = self.origin + (index - 1) * self.step
        return Step(index, start, start + self.step)

    def index_of(self, moment: datetime) -> int:
        """The step whose events include ``moment``."""
        return math.floor((moment - self.origin) / self.step) + 1

    def __iter__(self) -> Iterator[Step]:
        return (self.at(k) for k in range(1, self.steps + 1))

    def __len__(self) -> int:
        return self.steps

    @property
    def end(self) -> datetime:
        """The end of the last step."""
        return self.origin + self.steps * self.step

    def describe(self) -> dict[str, object]:
        """A JSON-able description."""
        return {
            "origin": self.origin.isoformat(),
            "end": self.end.isoformat(),
            "step_days": self.step.days,
            "steps": self.steps,
        }
