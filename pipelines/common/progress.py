"""Progress of long work where a person waits: a bar in a terminal, periodic log lines elsewhere.

In a terminal (stderr is a TTY and no Airflow task is running) :class:`Progress` draws a tqdm bar;
under Airflow or with output captured (DVC, a CI log) it writes a plain line at most every
``every_s`` seconds and one when the work ends, so a task log shows how far a long step got without
pages of bar redraws.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger("flywheel.progress")


def interactive() -> bool:
    """A person watches: stderr is a terminal and this is not an Airflow task."""
    return sys.stderr.isatty() and not os.environ.get("AIRFLOW_CTX_DAG_ID")


class Progress:
    """``with Progress("training epochs", total=30, unit="epoch") as p: ... p.update(loss=0.1)``."""

    def __init__(
        self,
        what: str,
        total: int | None = None,
        unit: str = "it",
        *,
        every_s: float = 30.0,
        bar: bool | None = None,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger = log,
    ) -> None:
        self.what, self.total, self.unit, self.every_s = what, total, unit, every_s
        self.enabled, self.clock, self.logger = enabled, clock, logger
        self.done: int = 0
        self.postfix: dict[str, Any] = {}
        self.started = self.last = clock()
        self.bar: Any = None
        if enabled and (interactive() if bar is None else bar):
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=what, unit=unit, leave=False, dynamic_ncols=True)

    def update(self, n: int = 1, **postfix: Any) -> None:
        """``n`` more units done; ``postfix`` (loss, rows, ...) shown beside the count."""
        if not self.enabled:
            return
        self.done += n
        self.postfix = postfix
        if self.bar is not None:
            self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(n)
        elif self.clock() - self.last >= self.every_s:
            self.last = self.clock()
            self.logger.info("%s", self.line())

    def line(self) -> str:
        """``training epochs: 3/30 epoch (10%), 12.0 s, loss=0.41``."""
        count = f"{self.done}/{self.total}" if self.total else str(self.done)
        share = f" ({self.done / self.total:.0%})" if self.total else ""
        extra = "".join(f", {k}={_short(v)}" for k, v in self.postfix.items())
        return f"{self.what}: {count} {self.unit}{share}, {self.clock() - self.started:.1f} s{extra}"

    def close(self) -> None:
        """End the bar, or write the final line."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.close()
        else:
            self.logger.info("%s (done)", self.line())

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def progress(items: Iterable[T], what: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """Iterate ``items`` with a :class:`Progress` (``total`` defaults to ``len(items)`` when it has one)."""
    size = total if total is not None else (len(items) if isinstance(items, Sized) else None)
    with Progress(what, size, unit) as shown:
        for item in items:
            yield item
            shown.update()


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
