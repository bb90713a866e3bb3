"""Progress: a bar in a terminal, periodic log lines under Airflow or with captured output."""

from __future__ import annotations

import io
import logging

import pytest

from pipelines.common import progress as module
from pipelines.common.progress import Progress, interactive, progress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "flywheel.progress"]


def test_without_a_terminal_it_logs_at_most_every_interval_and_at_the_end(caplog):
    caplog.set_level(logging.INFO, logger="flywheel.progress")
    clock = Clock()
    with Progress("training epochs", 30, "epoch", every_s=10, bar=False, clock=clock) as shown:
        for seconds in (4, 4, 4, 4, 4, 4):  # a line once 10 s have passed since the last one, and the end
            clock.now += seconds
            shown.update(loss=0.123456)
    assert lines(caplog) == [
        "training epochs: 3/30 epoch (10%), 12.0 s, loss=0.1235",
        "training epochs: 6/30 epoch (20%), 24.0 s, loss=0.1235",
        "training epochs: 6/30 epoch (20%), 24.0 s, loss=0.1235 (done)",
    ]


def test_an_unknown_total_counts_without_a_share(caplog):
    caplog.set_level(logging.INFO, logger="flywheel.progress")
    with Progress("records drained", unit="record", bar=False, clock=Clock()) as shown:
        shown.update(500)
    assert lines(caplog) == ["records drained: 500 record, 0.0 s (done)"]


def test_a_disabled_progress_says_nothing(caplog):
    caplog.set_level(logging.INFO, logger="flywheel.progress")
    with Progress("training epochs", 3, bar=False, enabled=False) as shown:
        shown.update()
    assert lines(caplog) == []


def test_in_a_terminal_it_draws_a_bar(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(module.sys, "stderr", out)
    with Progress("backtest steps", 4, "step", bar=True) as shown:
        shown.update(2, policy="drift")
        assert shown.bar is not None and shown.bar.n == 2 and shown.bar.total == 4
    assert "backtest steps" in out.getvalue()


@pytest.mark.parametrize(
    ("tty", "airflow", "expected"), [(True, None, True), (True, "d", False), (False, None, False)]
)
def test_a_bar_only_for_a_person_at_a_terminal(monkeypatch, tty, airflow, expected):
    stream = io.StringIO()
    stream.isatty = lambda: tty  # type: ignore[method-assign]
    monkeypatch.setattr(module.sys, "stderr", stream)
    if airflow:
        monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", airflow)
    else:
        monkeypatch.delenv("AIRFLOW_CTX_DAG_ID", raising=False)
    assert interactive() is expected


def test_progress_wraps_an_iterable_and_takes_its_length(caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="flywheel.progress")
    monkeypatch.delenv("AIRFLOW_CTX_DAG_ID", raising=False)
    monkeypatch.setattr(module, "interactive", lambda: False)
    assert list(progress([1, 2, 3], "steps", unit="step")) == [1, 2, 3]
    assert lines(caplog)[-1].startswith("steps: 3/3 step (100%)")
