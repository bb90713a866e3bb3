"""Airflow's public REST API (``/api/v2``) as the runner uses it: queries, and following runs.

The client itself (login, calls, errors) is :mod:`pipelines.common.airflow_api`, shared with the product.

A trigger is a ``POST`` of a manual run and an unpause a ``PATCH``; everything else the scheduler does by
itself, and this module only watches: a run to its end, and the asset-triggered run the scheduler creates
after an asset event.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from pipelines.common.airflow_api import AirflowApi, AirflowApiError, quote, run_path
from pipelines.demo.airflow_runner.runs import (
    TERMINAL_TASK_STATES,
    WAITING_TASK_STATES,
    AirflowRunError,
    Check,
    Progress,
    RunStatus,
    describe_tasks,
    due_slot,
    failure_message,
    format_elapsed,
    format_progress,
    last_lines,
    log_text,
    parse_run,
    say,
)

POLL_S = 1.0  # how often a run being followed is asked for its state (two API calls)


def run_status(api: AirflowApi, dag_id: str, run_id: str) -> RunStatus:
    """The run and its task states, now."""
    path = run_path(dag_id, run_id)
    return parse_run(api.call("GET", path), api.call("GET", f"{path}/taskInstances", limit=100))


def task_count(api: AirflowApi, dag_id: str) -> int:
    """How many tasks the DAG has: the total of the progress line before its task instances exist."""
    return int(api.call("GET", f"/dags/{quote(dag_id)}/tasks").get("total_entries", 0))


def task_log(api: AirflowApi, status: RunStatus, task: str) -> str:
    """The text of the log of the task's latest try; why there is none, when there is none."""
    task_id, _, index = task.partition("[")
    path = (
        f"{run_path(status.dag_id, status.run_id)}/taskInstances/{quote(task_id)}/logs/"
        f"{max(status.tries.get(task, 1), 1)}"
    )
    try:
        return log_text(api.call("GET", path, full_content="true", map_index=index.rstrip("]") or None))
    except AirflowApiError as exc:
        return f"(no log: {exc})"


def emitted_events(api: AirflowApi, status: RunStatus) -> list[dict[str, Any]]:
    """The asset events a run emitted: what may trigger other DAGs."""
    body = api.call(
        "GET", "/assets/events", source_dag_id=status.dag_id, source_run_id=status.run_id, limit=100
    )
    return list(body.get("asset_events", []))


def find_runs(api: AirflowApi, dag_id: str, **query: Any) -> list[RunStatus]:
    """The DAG's runs matching ``query`` (``run_type``, ``run_after_gte``, ...), oldest first."""
    body = api.call("GET", f"/dags/{quote(dag_id)}/dagRuns", order_by="run_after", limit=100, **query)
    return [parse_run(run) for run in body.get("dag_runs", [])]


def dag_or_none(api: AirflowApi, dag_id: str) -> dict[str, Any] | None:
    """The DAG as the API knows it; None until the DAG processor has parsed it."""
    try:
        return dict(api.call("GET", f"/dags/{quote(dag_id)}"))
    except AirflowApiError as exc:
        if exc.status == 404:
            return None
        raise


# -- following runs -------------------------------------------------------------------------------------


def wait_run(
    api: AirflowApi,
    dag_id: str,
    run_id: str,
    timeout_s: float,
    out: TextIO | None = sys.stdout,
    check: Check | None = None,
    poll_s: float = POLL_S,
) -> RunStatus:
    """Follow a run until it succeeds; raise :class:`AirflowRunError` with log tails on failure or timeout.

    A task waiting for a retry is reported once per try with the end of its log: retries are real, and
    the retry delay can be long. The run's state is asked for every ``poll_s`` seconds: each time costs the
    API server CPU that the run's tasks may be waiting for.
    """
    progress, total, started = Progress(out), task_count(api, dag_id), time.monotonic()
    retried: set[str] = set()
    while not (status := run_status(api, dag_id, run_id)).finished:
        elapsed = time.monotonic() - started
        line = format_progress(status, elapsed, total)
        for task in set(status.in_state("up_for_retry")) - retried:
            retried.add(task)
            progress.note(
                f"{dag_id}.{task} failed try {status.tries.get(task)}, will retry; its log ends:\n"
                f"{last_lines(task_log(api, status, task), 8)}"
            )
        retried &= set(status.in_state("up_for_retry"))
        progress.show(line, line.rsplit(" (", 1)[0])
        if elapsed > timeout_s:
            progress.end(line)
            busy = [t for t, s in status.tasks.items() if s not in TERMINAL_TASK_STATES | WAITING_TASK_STATES]
            raise AirflowRunError(
                failure_message(
                    status,
                    f"did not finish within {timeout_s:g} s",
                    {t: task_log(api, status, t) for t in busy},
                )
            )
        if check:
            check()
        time.sleep(poll_s)
    progress.end(format_progress(status, time.monotonic() - started, total))
    if status.state != "success":
        raise AirflowRunError(
            failure_message(
                status, "failed", {t: task_log(api, status, t) for t in status.in_state("failed")}
            )
        )
    return status


def wait_created(
    api: AirflowApi,
    dag_id: str,
    what: str,
    query: Mapping[str, Any],
    timeout_s: float,
    out: TextIO | None = sys.stdout,
    check: Check | None = None,
    give_up: Callable[[], str | None] | None = None,
) -> RunStatus:
    """Wait until the scheduler creates a run of ``dag_id`` matching ``query``; the oldest such run.

    ``give_up`` returns why no run will come (then this raises at once), or None to keep waiting.
    """
    progress, started = Progress(out), time.monotonic()
    while not (runs := find_runs(api, dag_id, **query)):
        if give_up and (reason := give_up()):
            raise AirflowRunError(reason)
        elapsed = time.monotonic() - started
        line = f"{dag_id}: waiting for the scheduler to create {what} ({format_elapsed(elapsed)})"
        progress.show(line, "waiting")
        if elapsed > timeout_s:
            progress.end(line)
            raise AirflowRunError(
                f"the scheduler created no {dag_id} run ({what}) within {timeout_s:g} s; "
                "see its log in $AIRFLOW_HOME/processes/logs/scheduler.log"
            )
        if check:
            check()
        time.sleep(POLL_S)
    progress.end(f"{dag_id} {runs[0].run_id}: created by the scheduler ({what})")
    return runs[0]


def wait_asset_triggered(
    api: AirflowApi,
    dag_id: str,
    after: str,
    timeout_s: float,
    out: TextIO | None = sys.stdout,
    upstream: RunStatus | None = None,
    check: Check | None = None,
) -> RunStatus:
    """Wait for the asset-triggered run of ``dag_id`` the scheduler creates after ``after`` (ISO), to its end.

    With ``upstream``, the run whose asset events should trigger it: fail at once, naming its task states,
    when it emitted no asset event and no such run exists, rather than waiting out the timeout.
    """

    def give_up() -> str | None:
        if upstream is None or emitted_events(api, upstream) or find_runs(api, dag_id, **query):
            return None
        return (
            f"{upstream.dag_id} run {upstream.run_id} emitted no asset event ({describe_tasks(upstream)}), "
            f"so the scheduler triggers no {dag_id} run"
        )

    query = {"run_type": "asset_triggered", "run_after_gte": after}
    run = wait_created(
        api, dag_id, f"an asset-triggered run after {after}", query, timeout_s, out, check, give_up
    )
    return wait_run(api, dag_id, run.run_id, timeout_s, out, check)


def known_dag(api: AirflowApi, dag_id: str) -> dict[str, Any]:
    """The DAG as the API knows it; fails clearly when Airflow has no such DAG."""
    dag = dag_or_none(api, dag_id)
    if dag is None:
        raise AirflowRunError(f"no DAG {dag_id} in Airflow; is it in the DAGs folder?")
    return dag


def unpause(api: AirflowApi, dag_id: str, out: TextIO | None = sys.stdout) -> str | None:
    """Unpause a paused DAG; the logical date of the scheduled run that this starts at once, if any."""
    dag = known_dag(api, dag_id)
    if not dag.get("is_paused"):
        return None
    slot = due_slot(dag, datetime.now(UTC))
    api.call("PATCH", f"/dags/{quote(dag_id)}", {"is_paused": False})
    due = f": the scheduler starts its due run of {slot} now (catchup=False runs the latest missed slot)"
    say(out, f"unpaused {dag_id}" + (due if slot else ""))
    return slot


def trigger(
    api: AirflowApi, dag_id: str, conf: Mapping[str, Any] | None = None, logical_date: str | None = None
) -> RunStatus:
    """Create a manual run of ``dag_id`` now with ``conf`` (one run, even if a locked database is retried)."""
    run_id = f"manual__{datetime.now(UTC).isoformat()}"
    body = {"dag_run_id": run_id, "logical_date": logical_date, "conf": dict(conf or {})}
    try:
        return parse_run(api.call("POST", f"/dags/{quote(dag_id)}/dagRuns", body))
    except AirflowApiError as exc:
        if exc.status != 409 or logical_date:  # 409: made by an attempt whose answer was lost
            raise
        return parse_run(api.call("GET", run_path(dag_id, run_id)))


def trigger_and_follow(
    api: AirflowApi,
    dag_id: str,
    conf: Mapping[str, Any] | None = None,
    then: Sequence[str] = (),
    timeout_s: float = 1200.0,
    out: TextIO | None = sys.stdout,
    check: Check | None = None,
    poll_s: float = POLL_S,
) -> list[RunStatus]:
    """Trigger ``dag_id`` and wait for its run, then for the asset-triggered run of each DAG in ``then``.

    A paused DAG is unpaused once triggered. Unpausing would start its due cron slot at once
    (``catchup=False`` runs the latest missed one), so the manual run takes that slot's logical date:
    the scheduler sees a run for the slot and starts no second one.
    """
    dag = known_dag(api, dag_id)
    slot = due_slot(dag, datetime.now(UTC)) if dag.get("is_paused") else None
    run = trigger(api, dag_id, conf, slot)
    details = (f" with conf {json.dumps(dict(conf))}" if conf else "") + (
        f" for its due slot {slot}" if slot else ""
    )
    say(out, f"triggered {dag_id} run {run.run_id}{details}")
    if dag.get("is_paused"):
        api.call("PATCH", f"/dags/{quote(dag_id)}", {"is_paused": False})
        say(out, f"unpaused {dag_id}")
    runs = [wait_run(api, dag_id, run.run_id, timeout_s, out, check, poll_s)]
    after = runs[0].start_date or runs[0].run_after or ""
    for downstream in then:
        runs.append(wait_asset_triggered(api, downstream, after, timeout_s, out, runs[-1], check))
    return runs
