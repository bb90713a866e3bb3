"""What a DAG run looks like to a person waiting for it: its state, a progress line, its log's tail.

Pure functions of the REST API's JSON bodies (no I/O but the stream :class:`Progress` writes to).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO

from pipelines.common.errors import FlywheelError

TERMINAL_TASK_STATES = frozenset({"success", "skipped", "failed", "upstream_failed", "removed"})
WAITING_TASK_STATES = frozenset({"none", "scheduled"})
FINISHED_RUN_STATES = frozenset({"success", "failed"})

Check = Callable[[], None]  # raises when something the wait depends on is gone


class AirflowRunError(FlywheelError):
    """Airflow did not start, a run failed or timed out; the message says which, with the log tail."""


@dataclass(frozen=True)
class RunStatus:
    """One DAG run as the REST API reports it, with the state and try number of each task."""

    dag_id: str
    run_id: str
    state: str
    run_type: str = ""
    run_after: str | None = None
    start_date: str | None = None
    tasks: dict[str, str] = field(default_factory=dict)
    tries: dict[str, int] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        """Whether the run reached a final state (``success`` or ``failed``)."""
        return self.state in FINISHED_RUN_STATES

    @property
    def done(self) -> int:
        """How many of its tasks reached a final state."""
        return sum(state in TERMINAL_TASK_STATES for state in self.tasks.values())

    def in_state(self, *states: str) -> list[str]:
        """Its tasks in one of ``states``."""
        return [task for task, state in self.tasks.items() if state in states]


def parse_run(run: Mapping[str, Any], task_instances: Mapping[str, Any] | None = None) -> RunStatus:
    """A :class:`RunStatus` from the bodies of ``GET .../dagRuns/{id}`` and ``GET .../taskInstances``."""
    tasks: dict[str, str] = {}
    tries: dict[str, int] = {}
    for ti in (task_instances or {}).get("task_instances", []):
        index = ti.get("map_index")
        name = ti["task_id"] if index is None or index < 0 else f"{ti['task_id']}[{index}]"
        tasks[name] = ti.get("state") or "none"
        tries[name] = int(ti.get("try_number") or 0)
    return RunStatus(
        dag_id=run["dag_id"],
        run_id=run["dag_run_id"],
        state=run["state"],
        run_type=run.get("run_type") or "",
        run_after=run.get("run_after"),
        start_date=run.get("start_date"),
        tasks=tasks,
        tries=tries,
    )


def format_elapsed(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``: short enough for a progress line."""
    seconds = int(max(seconds, 0))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def format_progress(status: RunStatus, elapsed: float, total: int | None = None) -> str:
    """One line: dag id, run id, state, tasks done/total, the tasks at work, and the time waited."""
    total = max(total or 0, len(status.tasks))
    busy = [
        f"{task} {state}"
        for task, state in status.tasks.items()
        if state not in TERMINAL_TASK_STATES | WAITING_TASK_STATES
    ]
    active = f" [{', '.join(busy)}]" if busy else ""
    return (
        f"{status.dag_id} {status.run_id}: {status.state}, {status.done}/{total or '?'} tasks done"
        f"{active} ({format_elapsed(elapsed)})"
    )


def describe_tasks(status: RunStatus) -> str:
    """``ingest success, validate skipped``: every task of the run with its state."""
    return ", ".join(f"{task} {state}" for task, state in status.tasks.items()) or "no task instances yet"


def log_text(body: Mapping[str, Any] | str) -> str:
    """The plain text of a task log from ``GET .../logs/{try}`` (structured JSON messages, or text)."""
    if isinstance(body, str):
        return body
    lines = []
    for message in body.get("content") or []:
        if not isinstance(message, Mapping):
            lines.append(str(message))
            continue
        stamp = str(message.get("timestamp") or "")[:19]
        level = str(message.get("level") or "").upper()
        lines.append(" ".join(part for part in (stamp, level, str(message.get("event", ""))) if part))
        lines += [
            f"    {err.get('exc_type')}: {err.get('exc_value')}"
            for err in message.get("error_detail") or []
            if isinstance(err, Mapping)
        ]
    return "\n".join(lines)


def last_lines(text: str, count: int = 40) -> str:
    """The last ``count`` lines of ``text``."""
    return "\n".join(text.splitlines()[-count:])


def failure_message(status: RunStatus, why: str, logs: Mapping[str, str]) -> str:
    """What failed (or is stuck), every task's state, and the log tail of each task named in ``logs``."""
    parts = [f"{status.dag_id} run {status.run_id} {why}; tasks: {describe_tasks(status)}"]
    for task, text in logs.items():
        parts.append(f"--- last lines of the log of {status.dag_id}.{task}:\n{last_lines(text) or '(empty)'}")
    return "\n".join(parts)


def due_slot(dag: Mapping[str, Any], now: datetime) -> str | None:
    """The logical date of the scheduled run the scheduler starts as soon as the DAG is unpaused, if any.

    ``dag`` is the body of ``GET /dags/{id}``; a slot is due when its ``next_dagrun_run_after`` has passed.
    """
    run_after, logical = dag.get("next_dagrun_run_after"), dag.get("next_dagrun_logical_date")
    if not run_after or not logical:
        return None
    return logical if datetime.fromisoformat(str(run_after).replace("Z", "+00:00")) <= now else None


class Progress:
    """A waiting run on one line: rewritten in place on a terminal, printed when it changes otherwise."""

    def __init__(self, out: TextIO | None) -> None:
        self.out, self._last = out, ""
        self.tty = bool(out is not None and getattr(out, "isatty", lambda: False)())

    def show(self, line: str, key: str) -> None:
        """Show ``line``; off a terminal only when ``key`` (the line without its clock) changed."""
        if self.out is None:
            return
        if self.tty:
            self.out.write(f"\r{line}\033[K")
        elif key != self._last:
            self.out.write(line + "\n")
        self._last = key
        self.out.flush()

    def end(self, line: str) -> None:
        """The last line of this wait."""
        if self.out is not None:
            self.out.write(f"\r{line}\033[K\n" if self.tty else line + "\n")
            self.out.flush()

    def note(self, text: str) -> None:
        """A message between progress lines."""
        if self.out is not None:
            self.out.write(("\r\033[K" if self.tty else "") + text + "\n")
            self.out.flush()


def say(out: TextIO | None, line: str) -> None:
    """Print one line to ``out`` (nothing when None)."""
    if out is not None:
        print(line, file=out, flush=True)
