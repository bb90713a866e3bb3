"""Every task has the execution_timeout params.yaml gives its stage; every DAG has its dagrun_timeout."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support.install import ROOT


@pytest.fixture(scope="module")
def timeouts():
    from pipelines.common.config import load_params

    return load_params(ROOT / "params.yaml").timeouts


def test_every_task_has_its_stages_execution_timeout(dagbag, timeouts):
    assert dagbag.dags, dagbag.import_errors
    for dag_id, dag in dagbag.dags.items():
        for task in dag.tasks:
            assert task.execution_timeout == timeouts.task(task.task_id), (
                f"{dag_id}.{task.task_id}: pass execution_timeout=task_timeout({task.task_id!r})"
            )
            assert task.task_id in timeouts.tasks, f"add timeouts.tasks.{task.task_id} to params.yaml"


def test_every_dag_has_its_dagrun_timeout(dagbag, timeouts):
    for dag_id, dag in dagbag.dags.items():
        name = dag_id.removeprefix("flywheel_")
        expected = timeouts.dagrun(name)
        assert dag.dagrun_timeout == expected, f"{dag_id}: pass dagrun_timeout=dagrun_timeout({name!r})"
        assert dag.dagrun_timeout >= max(task.execution_timeout for task in dag.tasks)


@pytest.mark.parametrize(
    ("limit", "shown"),
    [(timedelta(seconds=2), "2 s"), (timedelta(minutes=30), "30 min"), (timedelta(hours=4), "240 min")],
)
def test_the_timeout_message_names_the_stage_the_limit_and_the_key(limit, shown):
    from flywheel_provider.timeouts import timeout_message

    message = timeout_message("train", limit)
    assert f"stage 'train' exceeded its execution_timeout of {shown}" in message
    assert "timeouts.tasks.train in params.yaml" in message


@pytest.mark.parametrize(
    ("timeouts", "fragment"),
    [
        ({"tasks": {"train": 10}}, "timeouts.tasks = {'train': 10}: expected needs a 'default' entry"),
        ({"tasks": {"default": 0}}, "minutes must be > 0"),
        ({"dagruns": {"default": -5}}, "minutes must be > 0"),
        ({"tasks": {"default": "soon"}}, "timeouts.tasks.default = 'soon'"),
    ],
)
def test_bad_timeouts_fail_at_load_time(demo_params, timeouts, fragment):
    from pipelines.common.config import ParamsError, parse_params

    data = {**demo_params.model_dump(by_alias=True), "timeouts": timeouts}
    with pytest.raises(ParamsError) as caught:
        parse_params(data)
    assert fragment in str(caught.value)
