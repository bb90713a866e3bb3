"""The embedded Airflow runner's pure parts: run states, progress lines, log tails, due slots, login, PIDs.

The runner against a real scheduler is tests/e2e/test_drift_loop.py.
"""

from __future__ import annotations

import io
import json
import sys
from datetime import UTC, datetime

import psutil
import pytest

from pipelines.demo.airflow_runner import __main__ as cli
from pipelines.demo.airflow_runner import processes, runs
from pipelines.demo.services.supervisor import Spec, Supervisor


def ti(task_id: str, state: str | None, try_number: int = 1, map_index: int = -1) -> dict:
    return {"task_id": task_id, "state": state, "try_number": try_number, "map_index": map_index}


def dag_run(state: str = "running", run_id: str = "manual__2026-11-21T10:00:00+00:00", **extra) -> dict:
    return {
        "dag_id": "flywheel_training",
        "dag_run_id": run_id,
        "state": state,
        "run_type": "manual",
        "run_after": "2026-11-21T10:00:00Z",
        "start_date": "2026-11-21T10:00:01Z",
        **extra,
    }


def status(state: str = "running", **tasks: str) -> runs.RunStatus:
    return runs.parse_run(dag_run(state), {"task_instances": [ti(t, s) for t, s in tasks.items()]})


# -- parsing and counting ----------------------------------------------------------------------


def test_a_run_and_its_task_instances_are_parsed():
    parsed = runs.parse_run(
        dag_run(),
        {
            "task_instances": [
                ti("prepare", "success"),
                ti("train", "running", 2),
                ti("record", None),
                ti("score", "queued", 1, 3),
            ]
        },
    )
    assert (parsed.dag_id, parsed.run_id, parsed.state, parsed.run_type) == (
        "flywheel_training",
        "manual__2026-11-21T10:00:00+00:00",
        "running",
        "manual",
    )
    assert parsed.tasks == {"prepare": "success", "train": "running", "record": "none", "score[3]": "queued"}
    assert parsed.tries["train"] == 2 and parsed.start_date == "2026-11-21T10:00:01Z"


def test_a_run_without_task_instances_yet_has_no_tasks():
    parsed = runs.parse_run(dag_run("queued"))
    assert parsed.tasks == {} and parsed.done == 0 and not parsed.finished


@pytest.mark.parametrize(
    ("state", "finished"), [("queued", False), ("running", False), ("success", True), ("failed", True)]
)
def test_only_success_and_failed_finish_a_run(state, finished):
    assert status(state).finished is finished


def test_done_counts_every_final_task_state():
    run = status(
        a="success",
        b="skipped",
        c="failed",
        d="upstream_failed",
        e="removed",
        f="running",
        g="up_for_retry",
        h="none",
        i="queued",
    )
    assert run.done == 5 and run.in_state("up_for_retry", "queued") == ["g", "i"]


# -- what a person sees -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (42.9, "42s"), (60, "1m00s"), (185, "3m05s"), (3720, "1h02m"), (-3, "0s")],
)
def test_elapsed_time_is_short(seconds, text):
    assert runs.format_elapsed(seconds) == text


def test_the_progress_line_names_the_run_its_state_the_tasks_done_and_at_work():
    line = runs.format_progress(
        status(prepare="success", snapshot="success", train="running", evaluate="none", promote="scheduled"),
        75,
        total=7,
    )
    assert line == (
        "flywheel_training manual__2026-11-21T10:00:00+00:00: running, 2/7 tasks done [train running] (1m15s)"
    )


@pytest.mark.parametrize(("total", "shown"), [(None, "0/? tasks"), (0, "0/? tasks"), (2, "0/2 tasks")])
def test_before_task_instances_exist_the_total_comes_from_the_dag(total, shown):
    assert shown in runs.format_progress(status("queued"), 0, total)


def test_a_task_waiting_for_its_retry_is_shown_at_work():
    assert "[ingest up_for_retry]" in runs.format_progress(status(ingest="up_for_retry", validate="none"), 5)


def test_the_task_states_are_described_in_order():
    assert runs.describe_tasks(status(check="success", trigger_retrain="skipped")) == (
        "check success, trigger_retrain skipped"
    )
    assert runs.describe_tasks(status("queued")) == "no task instances yet"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_a_progress_line_is_printed_only_when_it_changes():
    out = io.StringIO()
    progress = runs.Progress(out)
    for line, key in [("a (1s)", "a"), ("a (3s)", "a"), ("b (5s)", "b")]:
        progress.show(line, key)
    progress.end("b done (7s)")
    assert out.getvalue().splitlines() == ["a (1s)", "b (5s)", "b done (7s)"]


def test_on_a_terminal_the_progress_line_is_rewritten_in_place():
    out = Terminal()
    progress = runs.Progress(out)
    progress.show("a (1s)", "a")
    progress.show("a (3s)", "a")
    progress.end("a done")
    assert out.getvalue() == "\ra (1s)\033[K\ra (3s)\033[K\ra done\033[K\n"


# -- logs and failures ----------------------------------------------------------------------------


def test_a_structured_task_log_becomes_text_with_its_exceptions():
    body = {
        "content": [
            {"event": "::group::Log message source details", "timestamp": None},
            {
                "event": "Task failed with exception",
                "timestamp": "2026-11-21T10:00:03.123456Z",
                "level": "error",
                "error_detail": [{"exc_type": "IngestError", "exc_value": "source folder /x does not exist"}],
            },
            "a plain line",
        ]
    }
    assert runs.log_text(body).splitlines() == [
        "::group::Log message source details",
        "2026-11-21T10:00:03 ERROR Task failed with exception",
        "    IngestError: source folder /x does not exist",
        "a plain line",
    ]
    assert runs.log_text("already text") == "already text"
    assert runs.log_text({"content": None}) == ""


def test_last_lines_keeps_the_end():
    assert runs.last_lines("\n".join(map(str, range(100))), 3) == "97\n98\n99"
    assert runs.last_lines("", 3) == ""


def test_a_failure_names_the_run_every_task_state_and_the_failed_task_log():
    run = status("failed", ingest="failed", validate="upstream_failed")
    text = runs.failure_message(
        run, "failed", {"ingest": "line 1\nIngestError: broker 127.0.0.1:9 unreachable"}
    )
    first, *rest = text.splitlines()
    assert first == (
        "flywheel_training run manual__2026-11-21T10:00:00+00:00 failed; tasks: ingest failed, "
        "validate upstream_failed"
    )
    assert rest == [
        "--- last lines of the log of flywheel_training.ingest:",
        "line 1",
        "IngestError: broker 127.0.0.1:9 unreachable",
    ]
    assert runs.failure_message(run, "failed", {"ingest": ""}).endswith("(empty)")


# -- the due scheduled run of a paused DAG --------------------------------------------------------

NOW = datetime(2026, 11, 21, 15, 7, tzinfo=UTC)


@pytest.mark.parametrize(
    ("run_after", "logical", "due"),
    [
        ("2026-11-21T15:00:00Z", "2026-11-21T15:00:00Z", "2026-11-21T15:00:00Z"),  # missed: runs on unpause
        ("2026-11-21T15:07:00+00:00", "2026-11-21T15:07:00+00:00", "2026-11-21T15:07:00+00:00"),  # due now
        ("2026-11-21T15:15:00Z", "2026-11-21T15:15:00Z", None),  # later: nothing starts on unpause
        (None, None, None),  # no time schedule (schedule=None, or assets only)
        ("2026-11-21T15:00:00Z", None, None),
    ],
)
def test_the_slot_that_starts_on_unpause_is_the_due_one(run_after, logical, due):
    dag = {"next_dagrun_run_after": run_after, "next_dagrun_logical_date": logical}
    assert runs.due_slot(dag, NOW) == due


# -- login, environment, processes ------------------------------------------------------------------


def test_a_password_is_added_once_and_other_users_are_kept(tmp_path):
    path = tmp_path / "airflow" / "simple_auth_manager_passwords.json.generated"
    password = processes.ensure_password(path, "admin")
    assert len(password) >= 12 and processes.ensure_password(path, "admin") == password
    path.write_text(json.dumps({"admin": "flywheel", "viewer": "v"}))
    assert processes.ensure_password(path, "admin") == "flywheel"
    assert json.loads(path.read_text()) == {"admin": "flywheel", "viewer": "v"}


def test_the_password_file_follows_airflow_configuration(tmp_path):
    assert processes.password_file(tmp_path, {}) == tmp_path / "simple_auth_manager_passwords.json.generated"
    custom = tmp_path / "elsewhere.json"
    env = {"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(custom)}
    assert processes.password_file(tmp_path, env) == custom


def test_the_processes_share_home_executor_paused_dags_and_a_local_api(tmp_path):
    env = processes.process_env(tmp_path, 8123, 8124, {"FLYWHEEL_HOME": "/h", "AIRFLOW__API__PORT": "1"}, {})
    assert env["FLYWHEEL_HOME"] == "/h" and env["AIRFLOW_HOME"] == str(tmp_path)
    assert env["AIRFLOW__API__PORT"] == "8123" and env["AIRFLOW__API__BASE_URL"] == "http://127.0.0.1:8123"
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1" and env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "True"
    assert env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] == "8124"  # not 8793, another Airflow's default
    assert env["AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL"] == "600"
    assert env["AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME"] == "0.5"  # a run's next task starts sooner


@pytest.mark.parametrize(
    ("extra", "environ", "expected"),
    [({}, {}, "600"), ({"AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5"}, {}, "5")],
)
def test_a_default_gives_way_to_what_is_asked(tmp_path, extra, environ, expected):
    key = "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL"
    assert processes.process_env(tmp_path, 1, 2, extra, environ)[key] == expected


def test_the_tasks_get_a_connection_to_this_api_unless_the_environment_has_one(tmp_path):
    env = processes.process_env(tmp_path, 8123, 8124, {}, {}, password="pw")
    conn = json.loads(env[processes.API_CONN_ENV])
    assert (conn["host"], conn["port"], conn["login"], conn["password"]) == ("127.0.0.1", 8123, "admin", "pw")
    assert processes.API_CONN_ENV not in processes.process_env(
        tmp_path, 1, 2, {}, {processes.API_CONN_ENV: "x"}, "p"
    )
    assert processes.API_CONN_ENV not in processes.process_env(tmp_path, 1, 2, {}, {})


def test_a_default_set_in_the_environment_is_left_to_the_environment(tmp_path):
    key = "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL"
    assert key not in processes.process_env(tmp_path, 1, 2, {}, {key: "30"})  # the processes inherit it


def test_three_components_are_started_and_only_the_api_server_listens(tmp_path):
    specs = processes.specs(8123, {"AIRFLOW_HOME": str(tmp_path)}, 60)
    assert [s.name for s in specs] == ["dag-processor", "scheduler", "api-server"]
    assert [s.port for s in specs] == [0, 0, 8123] and all(s.argv[1] == s.name for s in specs)
    assert specs[0].ready(specs[0], tmp_path)  # nothing to wait for: the API's health says when it runs


def test_without_a_started_api_the_commands_say_what_to_run_first(tmp_path):
    with pytest.raises(
        runs.AirflowRunError, match="run `python -m pipelines.demo.airflow_runner start` first"
    ):
        processes.connect(tmp_path)
    assert processes.stop(tmp_path, out=None) == {}


def test_start_refuses_while_a_recorded_component_runs_and_stop_ends_it_by_pid(tmp_path):
    sleeper = Spec(
        "scheduler", [sys.executable, "-c", "import time; time.sleep(120)"], 0, "", lambda spec, log: True
    )
    record = Supervisor(processes.state_dir(tmp_path)).start(sleeper)
    try:
        with pytest.raises(runs.AirflowRunError, match="scheduler already run for .*; stop them first"):
            processes.start(tmp_path, out=None)
        assert psutil.pid_exists(record["pid"])  # refusing stops nothing
    finally:
        out = io.StringIO()
        assert processes.stop(tmp_path, out=out) == {"scheduler": "stopped"}
    assert out.getvalue() == "Airflow: scheduler stopped\n"
    assert not Supervisor.alive(record)


def test_the_process_check_names_a_component_that_died(tmp_path):
    quick = Spec(
        "dag-processor", [sys.executable, "-c", "import time; time.sleep(1)"], 0, "", lambda spec, log: True
    )
    supervisor = Supervisor(processes.state_dir(tmp_path))
    record = supervisor.start(quick)
    psutil.Process(record["pid"]).wait(30)
    with pytest.raises(runs.AirflowRunError, match=r"dag-processor \(PID \d+\) is no longer running"):
        processes.process_check(tmp_path)()
    supervisor.stop("dag-processor")


def test_the_command_line_fails_clearly_without_a_started_airflow(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    assert cli.main(["trigger", "flywheel_ingest", "--conf", '{"sources": ["kafka"]}']) == 1
    assert "error: no Airflow API started for" in capsys.readouterr().err
    assert cli.main(["stop"]) == 0 and capsys.readouterr().out == ""


def test_the_command_line_refuses_a_conf_that_is_not_json(capsys):
    with pytest.raises(SystemExit):
        cli.main(["trigger", "flywheel_ingest", "--conf", "{sources: kafka}"])
    assert "--conf" in capsys.readouterr().err
