"""The training DAG benchmark's spans: from a `dags test` log, and from a scheduled run's REST bodies."""

from __future__ import annotations

import pytest

from benchmarks.bench_training_dag import run_spans, task_spans

LOG = """\
2026-11-29T02:22:57.900000Z [info     ] DAG bundles loaded: dags-folder [airflow.dag_processing]
2026-11-29T02:22:58.000000Z [info     ] [DAG TEST] starting task_id=prepare map_index=-1 [airflow.sdk]
2026-11-29T02:22:58.500000Z [info     ] dvc: [DAG TEST] end task task_id=prepare quoted in a message
2026-11-29T02:23:02.600000Z [info     ] [DAG TEST] end task task_id=prepare map_index=-1 [airflow.sdk]
2026-11-29T02:23:02.640000Z [info     ] [DAG TEST] starting task_id=snapshot map_index=-1 [airflow.sdk]
2026-11-29T02:23:04.140000Z [info     ] [DAG TEST] end task task_id=snapshot map_index=-1 [airflow.sdk]
2026-11-29T02:23:04.200000Z [info     ] [DAG TEST] starting task_id=record map_index=-1 [airflow.sdk]
"""


def test_each_finished_task_gets_its_span():
    assert task_spans(LOG) == {"prepare": pytest.approx(4.6), "snapshot": pytest.approx(1.5)}


@pytest.mark.parametrize("log", ["", "no task lines at all\n", LOG.splitlines()[-1]])
def test_a_log_without_finished_tasks_gives_no_spans(log):
    assert task_spans(log) == {}


def test_a_scheduled_run_gives_each_task_its_duration_and_the_scheduler_the_time_between():
    run = {"start_date": "2026-11-29T08:00:00Z", "end_date": "2026-11-29T08:00:10Z"}
    tasks = [  # as the API lists them: not in the order they ran
        {
            "task_id": "snapshot",
            "start_date": "2026-11-29T08:00:04.5Z",
            "end_date": "2026-11-29T08:00:09Z",
            "duration": 4.5,
        },
        {
            "task_id": "prepare",
            "start_date": "2026-11-29T08:00:00.25Z",
            "end_date": "2026-11-29T08:00:04Z",
            "duration": 3.75,
        },
    ]
    assert run_spans(run, tasks) == {
        "task_prepare": 3.75,
        "task_snapshot": 4.5,
        "between_tasks": pytest.approx(0.75),  # 0.25 before prepare, 0.5 between prepare and snapshot
    }
