"""Time limits read from params.yaml's ``timeouts`` section when a DAG file is parsed (one small YAML read).

``task_timeout("train")`` is a task's ``execution_timeout``, ``dagrun_timeout("training")`` a DAG's
``dagrun_timeout``; :func:`timeout_message` is what a task that ran past its limit says.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from typing import Any

from flywheel_provider.schedules import params_path


@cache
def _timeouts() -> Any:
    from pipelines.common.config import load_params

    return load_params(params_path()).timeouts


def task_timeout(task_id: str) -> timedelta:
    """``timeouts.tasks.<task_id>`` minutes (else ``timeouts.tasks.default``) as a timedelta."""
    limit: timedelta = _timeouts().task(task_id)
    return limit


def dagrun_timeout(dag: str) -> timedelta:
    """``timeouts.dagruns.<dag>`` minutes (else ``timeouts.dagruns.default``) as a timedelta."""
    limit: timedelta = _timeouts().dagrun(dag)
    return limit


def timeout_message(task_id: str, limit: timedelta | None) -> str:
    """A task past its limit: the stage, the limit and where the limit is set."""
    if limit is None:
        shown = "?"
    elif limit < timedelta(minutes=1):
        shown = f"{limit.total_seconds():g} s"
    else:
        shown = f"{limit.total_seconds() / 60:g} min"
    return (
        f"stage '{task_id}' exceeded its execution_timeout of {shown} "
        f"(timeouts.tasks.{task_id} in params.yaml); it was stopped and its pool slot released"
    )
