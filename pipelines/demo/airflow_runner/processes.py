"""Airflow's own processes for one ``AIRFLOW_HOME``: started in the background, recorded by PID, stopped.

``dag-processor``, ``scheduler`` (LocalExecutor) and ``api-server`` (REST API, UI, and the execution API the
tasks report to) on 127.0.0.1 and a free port, each recorded with its start time by
:class:`~pipelines.demo.services.supervisor.Supervisor` in ``$AIRFLOW_HOME/processes`` (logs in
``processes/logs``). No triggerer: no Flywheel task defers. DAGs are created paused; :func:`start`
unpauses the ones it is given once parsed.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import psutil

from pipelines.common.airflow_api import AirflowApi
from pipelines.demo.airflow_runner.rest import dag_or_none, unpause
from pipelines.demo.airflow_runner.runs import AirflowRunError, Check, last_lines, say
from pipelines.demo.services.supervisor import Spec, Supervisor, free_port, tail

COMPONENTS = ("dag-processor", "scheduler", "api-server")  # start order; the API is waited for
STOP_ORDER = (("scheduler", "dag-processor"), ("api-server",))  # the tasks report their end to the API
USER = "admin"
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
# Set in the environment to override either. The DAG files are parsed when the DAG processor starts;
# re-parsing them every 30 s (Airflow's default) would only take CPU from the tasks on a small machine. An
# idle scheduler sleeps before its next loop, and a run and each next task start on a loop: 0.5 s instead
# of Airflow's 1 s took the 1M training DAG's time between tasks from 3.4 s to 2.1 s and its wait before
# the first from 1.3 s to 0.7 s (medians of three runs), for about 1 CPU-s more of the scheduler per run
# (docs/benchmarks.md#through-the-scheduler).
DEFAULTS = {
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
    "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
}
# The Connection flywheel_training's record task sets its run's note with (the REST API, as this user).
API_CONN_ENV = "AIRFLOW_CONN_FLYWHEEL_AIRFLOW_API"


def airflow_home(env: Mapping[str, str] | None = None) -> Path:
    """``$AIRFLOW_HOME``, else Airflow's default ``~/airflow``."""
    env = os.environ if env is None else env
    return Path(env.get("AIRFLOW_HOME") or Path.home() / "airflow").resolve()


def state_dir(home: Path) -> Path:
    """Where the PIDs and logs of the processes started for ``home`` are kept."""
    return home / "processes"


def password_file(home: Path, env: Mapping[str, str] | None = None) -> Path:
    """The simple auth manager's password file (``[core] simple_auth_manager_passwords_file``)."""
    configured = {**os.environ, **(env or {})}.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")
    return Path(configured) if configured else home / "simple_auth_manager_passwords.json.generated"


def ensure_password(path: Path, user: str = USER) -> str:
    """The user's password in the simple auth manager's file; a random one is added when it has none."""
    text = path.read_text() if path.exists() else ""
    passwords = json.loads(text) if text.strip() else {}
    if user not in passwords:
        passwords[user] = secrets.token_urlsafe(12)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(passwords) + "\n")
    return str(passwords[user])


def process_env(
    home: Path,
    port: int,
    log_port: int,
    extra: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
    password: str | None = None,
) -> dict[str, str]:
    """What the three processes share: this home, the LocalExecutor, DAGs created paused, the API's address.

    ``log_port`` serves the task logs (Airflow's default, 8793, may be held by another Airflow here).
    :data:`DEFAULTS` apply unless ``environ`` (the environment) or ``extra`` sets them; so does, with the
    user's ``password``, the Connection to this API that puts the training run's note in the UI.
    """
    environ = os.environ if environ is None else environ
    defaults = dict(DEFAULTS)
    if password is not None:
        conn = {"conn_type": "http", "host": "127.0.0.1", "port": port, "login": USER, "password": password}
        defaults[API_CONN_ENV] = json.dumps(conn)
    return {
        **{key: value for key, value in defaults.items() if key not in environ},
        **(extra or {}),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(log_port),
    }


def specs(port: int, env: Mapping[str, str], start_timeout_s: float) -> list[Spec]:
    """How to start each component; the API server is ready when its health endpoint answers."""
    airflow = str(Path(sys.executable).parent / "airflow")
    url = f"http://127.0.0.1:{port}"
    api = AirflowApi(url, USER, "")

    def ready(spec: Spec, log: Path) -> bool:
        return spec.name != "api-server" or api.health() is not None

    return [
        Spec(
            name,
            [airflow, name],
            port if name == "api-server" else 0,
            url,
            ready,
            dict(env),
            start_timeout_s=start_timeout_s,
        )
        for name in COMPONENTS
    ]


def process_check(home: Path) -> Check:
    """A check that raises, with the log tail, when a component started for ``home`` no longer runs."""
    supervisor = Supervisor(state_dir(home))

    def check() -> None:
        for name, record in supervisor.status().items():
            if not record["alive"]:
                raise AirflowRunError(
                    f"Airflow's {name} (PID {record['pid']}) is no longer running; last lines "
                    f"of {record['log']}:\n{tail(Path(record['log']))}"
                )

    return check


def start(
    home: Path,
    dags: Sequence[str] = (),
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 300.0,
    out: TextIO | None = sys.stdout,
) -> AirflowApi:
    """Start the components for ``home``; once healthy and ``dags`` are parsed, unpause ``dags``.

    Unpausing starts a DAG's due cron slot at once; a DAG whose first run should be a trigger is left
    out of ``dags`` (:func:`~pipelines.demo.airflow_runner.rest.trigger_and_follow` unpauses it).

    Refuses while components started for ``home`` still run. On any failure (or Ctrl-C) what was
    started here is stopped again.
    """
    supervisor = Supervisor(state_dir(home))
    if running := [name for name, record in supervisor.status().items() if record["alive"]]:
        raise AirflowRunError(
            f"Airflow's {', '.join(running)} already run for {home}; stop them first "
            "(python -m pipelines.demo.airflow_runner stop, or make stop)"
        )
    port = port or free_port()
    password = ensure_password(password_file(home, env))
    api = AirflowApi(f"http://127.0.0.1:{port}", USER, password)
    check = process_check(home)
    try:
        for spec in specs(port, process_env(home, port, free_port(), env, password=password), timeout_s):
            supervisor.start(spec)
        say(
            out,
            f"Airflow: {api.base_url} (login {USER}, password in {password_file(home, env)}); "
            f"logs in {supervisor.logs}",
        )
        wait_healthy(api, timeout_s, check)
        for dag_id in dags:
            wait_parsed(api, dag_id, timeout_s, check)
            unpause(api, dag_id, out)
    except BaseException:
        stop(home, out=None)
        raise
    return api


def wait_healthy(api: AirflowApi, timeout_s: float, check: Check) -> None:
    """Wait until the metadata database, the scheduler and the DAG processor report healthy, and the task
    execution API answers (its first request builds it: the first task does not wait for that)."""
    deadline = time.monotonic() + timeout_s
    while True:
        health = api.health() or {}
        states = {
            part: (health.get(part) or {}).get("status")
            for part in ("metadatabase", "scheduler", "dag_processor")
        }
        states["execution_api"] = (api.execution_health() or {}).get("status")
        if all(state == "healthy" for state in states.values()):
            return
        if time.monotonic() > deadline:
            raise AirflowRunError(f"Airflow was not healthy within {timeout_s:g} s: {states}")
        check()
        time.sleep(1.0)


def wait_parsed(api: AirflowApi, dag_id: str, timeout_s: float, check: Check) -> None:
    """Wait until the DAG processor has parsed ``dag_id``; fail with the import errors when it does not."""
    deadline = time.monotonic() + timeout_s
    while dag_or_none(api, dag_id) is None:
        if time.monotonic() > deadline:
            errors = api.call("GET", "/importErrors").get("import_errors", [])
            found = "\n".join(
                f"{e.get('filename')}:\n{last_lines(e.get('stack_trace') or '', 15)}" for e in errors
            )
            raise AirflowRunError(
                f"DAG {dag_id} was not parsed within {timeout_s:g} s; import errors: {found or 'none'}"
            )
        check()
        time.sleep(1.0)


def stop(home: Path, timeout_s: float = 10.0, out: TextIO | None = sys.stdout) -> dict[str, str]:
    """Stop, by PID, every component started for ``home`` and the processes they still run (tasks).

    In :data:`STOP_ORDER`, each group with its task processes gets SIGTERM at once (a scheduler need not
    wait for a running task, and a task can still report its end to the API), then SIGKILL for what is
    left after ``timeout_s``; the supervisor forgets each component.
    """
    supervisor = Supervisor(state_dir(home))
    records = supervisor.status()
    alive = {name: psutil.Process(record["pid"]) for name, record in records.items() if record["alive"]}
    for group in STOP_ORDER:
        names = [name for name in group if name in alive]
        end_processes([proc for n in names for proc in [alive[n], *descendants(records[n])]], timeout_s)
    stopped = {name: "stopped" if name in alive else supervisor.stop(name) for name in records}
    for name in alive:
        supervisor.stop(name)  # forgets it (it is not running any more)
    if stopped:
        say(out, "Airflow: " + ", ".join(f"{name} {result}" for name, result in sorted(stopped.items())))
    return stopped


def descendants(record: Mapping[str, Any]) -> list[psutil.Process]:
    """The processes the recorded one started (executor workers, task processes, API workers)."""
    try:
        return list(psutil.Process(record["pid"]).children(recursive=True))
    except psutil.Error:
        return []


def end_processes(processes: list[psutil.Process], timeout_s: float = 10.0) -> None:
    """SIGTERM the processes still running, SIGKILL those left after ``timeout_s``."""
    for proc in processes:
        try:
            proc.terminate()
        except psutil.Error:
            pass
    _, left = psutil.wait_procs(processes, timeout=timeout_s)
    for proc in left:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(left, timeout=5)


@contextmanager
def running(
    home: Path,
    dags: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    timeout_s: float = 300.0,
    out: TextIO | None = sys.stdout,
) -> Iterator[AirflowApi]:
    """The embedded Airflow for a block: started, then stopped by PID however the block ends."""
    api = start(home, dags, env=env, timeout_s=timeout_s, out=out)
    try:
        yield api
    finally:
        stop(home, out=out)


def connect(home: Path) -> AirflowApi:
    """The API of the components :func:`start` started for ``home``; fails clearly when none runs."""
    record = Supervisor(state_dir(home)).status().get("api-server")
    if not record or not record["alive"]:
        raise AirflowRunError(
            f"no Airflow API started for {home}; run `python -m pipelines.demo.airflow_runner start` first"
        )
    return AirflowApi(record["endpoint"], USER, ensure_password(password_file(home)))
