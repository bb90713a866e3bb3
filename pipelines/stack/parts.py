"""The processes of the stack and the one-off steps before them (a database, a bucket, a migration).

Each part is one process on 127.0.0.1, started and stopped by PID by the services' supervisor; each
Airflow process has its own working directory and ``AIRFLOW_HOME``, sharing only what a multi-host
deployment shares: PostgreSQL, Redis, the S3 buckets, the workspace's git remote and the DAG files.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from pipelines.demo.services.supervisor import Spec, port_open
from pipelines.stack import system
from pipelines.stack.errors import StackError
from pipelines.stack.layout import AIRFLOW_ADMIN, BUCKET, DATABASES, MLFLOW_ADMIN, Layout, client_env

BIN = Path(sys.executable).parent
PSYCOPG2 = "postgresql+psycopg2"  # SQLAlchemy would pick psycopg (3), which the stack does not install
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
# (name, queue) of the Celery workers: training goes to the gpu queue (FLYWHEEL_TRAIN_QUEUE)
WORKERS = (("worker", "default"), ("worker-gpu", "gpu"))
AIRFLOW_PARTS = ("api-server", "scheduler", "dag-processor", "triggerer", *(w for w, _ in WORKERS))


def _run(argv: list[str], what: str, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> str:
    import os

    proc = subprocess.run(
        argv, env={**os.environ, **(env or {})}, cwd=cwd, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise StackError(
            f"{what} failed (exit {proc.returncode}): {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )
    return proc.stdout


# -- PostgreSQL ------------------------------------------------------------------------------------


def init_postgres(layout: Layout) -> None:
    """``initdb`` the data folder once, password-protected (scram-sha-256), as the ``postgres`` user."""
    data = layout.postgres_data
    if (data / "PG_VERSION").exists():
        return
    pg = system.postgres_bin()
    assert pg is not None  # system.require() ran
    for folder in (data.parent, data, layout.postgres_socket):
        folder.mkdir(parents=True, exist_ok=True)
        system.give_to_postgres(folder)
    pwfile = data.parent / "pwfile"
    pwfile.write_text(layout.secrets["postgres_password"] + "\n")
    system.give_to_postgres(pwfile)
    try:
        _run(
            [
                *system.as_postgres(),
                str(pg / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                f"--pwfile={pwfile}",
                "-A",
                "scram-sha-256",
                "-E",
                "UTF8",
            ],
            f"initdb of {data}",
        )
    finally:
        pwfile.unlink(missing_ok=True)


def postgres(layout: Layout) -> Spec:
    pg = system.postgres_bin()
    assert pg is not None
    port = layout.ports["postgres"]
    argv = [
        *system.as_postgres(),
        str(pg / "postgres"),
        "-D",
        str(layout.postgres_data),
        "-p",
        str(port),
        "-k",
        str(layout.postgres_socket),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "max_connections=200",
    ]
    return Spec(
        "postgres",
        argv,
        port,
        f"127.0.0.1:{port}",
        lambda spec, log: _pg_ready(layout),
        start_timeout_s=60,
        stop_signal=signal.SIGINT,  # "fast" shutdown, as pg_ctl stop: sessions end, a checkpoint, exit
    )


def _pg_ready(layout: Layout) -> bool:
    import psycopg2

    try:
        psycopg2.connect(layout.database_url("postgres"), connect_timeout=2).close()
        return True
    except psycopg2.Error:
        return False


def create_databases(layout: Layout) -> None:
    """Airflow's metadata, MLflow's store and MLflow's users: one database each, created once."""
    import psycopg2

    conn = psycopg2.connect(layout.database_url("postgres"), connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for name in DATABASES:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()


# -- Redis ---------------------------------------------------------------------------------------------


def redis(layout: Layout) -> Spec:
    port = layout.ports["redis"]
    server = system.redis_server()
    assert server is not None
    conf = layout.state / "redis.conf"  # the password in a private file, not in argv (ps shows argv)
    conf.write_text(
        f'port {port}\nbind 127.0.0.1\nsave ""\nappendonly no\ndaemonize no\n'
        f"requirepass {layout.secrets['redis_password']}\n"
    )
    conf.chmod(0o600)
    argv = [server, str(conf)]
    return Spec("redis", argv, port, f"127.0.0.1:{port}", lambda spec, log: port_open(spec.port))


# -- S3 bucket and the workspace's git remote -------------------------------------------------------------


def create_bucket(layout: Layout) -> None:
    """The one bucket: ``lake/`` (storage.root), ``mlflow/`` (artifacts), ``dvc/`` (the DVC remote)."""
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=layout.s3_endpoint,
        aws_access_key_id="flywheel",
        aws_secret_access_key="flywheel",
        region_name="us-east-1",
    )
    if BUCKET not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=BUCKET)


def init_workspace_remote(layout: Layout) -> None:
    """The bare git repository every worker clones the DVC workspace from and pushes its commits to."""
    remote = layout.workspace_remote
    if not (remote / "HEAD").exists():
        remote.mkdir(parents=True, exist_ok=True)
        _run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], f"git init --bare {remote}")


# -- MLflow ---------------------------------------------------------------------------------------------


def mlflow(layout: Layout) -> Spec:
    """``mlflow server`` with the PostgreSQL store, S3 artifacts and basic auth (its users in PostgreSQL)."""
    port = layout.ports["mlflow"]
    home = layout.state / "mlflow"
    home.mkdir(parents=True, exist_ok=True)
    ini = home / "basic_auth.ini"
    ini.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = {layout.database_url('mlflow_auth', PSYCOPG2)}\n"
        f"admin_username = {MLFLOW_ADMIN}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    ini.chmod(0o600)
    argv = [
        str(BIN / "mlflow"),
        "server",
        "--app-name",
        "basic-auth",
        "--artifacts-destination",
        f"s3://{BUCKET}/mlflow",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    env = {
        "MLFLOW_BACKEND_STORE_URI": layout.database_url("mlflow", PSYCOPG2),  # not in argv: ps shows argv
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "MLFLOW_AUTH_ADMIN_PASSWORD": layout.secrets["mlflow_admin_password"],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": layout.secrets["mlflow_secret_key"],
        "MLFLOW_S3_ENDPOINT_URL": layout.s3_endpoint,
        **{k: v for k, v in client_env(layout).items() if k.startswith("AWS_")},
    }
    return Spec(
        "mlflow",
        argv,
        port,
        layout.tracking_uri,
        lambda spec, log: http_ok(f"{spec.endpoint}/health"),
        env=env,
        cwd=home,
        start_timeout_s=180,
    )


def _text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def http_ok(url: str) -> bool:
    """True when ``GET url`` answers 200 within 2 s (a part's readiness)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


# -- Airflow --------------------------------------------------------------------------------------------


def airflow_env(layout: Layout, project: Path, part: str) -> dict[str, str]:
    """One Airflow process's environment: the shared configuration, its own home and log port."""
    home = layout.airflow_home(part)
    api = layout.api_url
    env = {
        **client_env(layout),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": layout.database_url("airflow", PSYCOPG2),
        "AIRFLOW__CELERY__BROKER_URL": layout.broker_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + layout.database_url("airflow", PSYCOPG2),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
        # prefork's pool processes are daemonic, and a daemonic process may not start children: the Kafka
        # ingest's landing process and torchrun need to. solo runs each task beside the worker's main loop.
        "AIRFLOW__CELERY__POOL": "solo",
        "AIRFLOW__CORE__DAGS_FOLDER": str(project / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(project / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__FERNET_KEY": layout.secrets["airflow_fernet_key"],
        "AIRFLOW__API_AUTH__JWT_SECRET": layout.secrets["airflow_jwt_secret"],
        "AIRFLOW__API__SECRET_KEY": layout.secrets["airflow_secret_key"],
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
        "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{AIRFLOW_ADMIN}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(layout.state / "airflow" / "passwords.json"),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(layout.ports["api"]),
        "AIRFLOW__API__BASE_URL": api,
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
        # The Connection flywheel_training's record task sets its run's note with (the REST API, as admin)
        "AIRFLOW_CONN_FLYWHEEL_AIRFLOW_API": json.dumps(
            {
                "conn_type": "http",
                "host": "127.0.0.1",
                "port": layout.ports["api"],
                "login": AIRFLOW_ADMIN,
                "password": layout.secrets["airflow_admin_password"],
            }
        ),
        # Task logs in one folder the api-server reads (on several hosts: remote logging to S3)
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(layout.state / "airflow" / "logs"),
        "FLYWHEEL_HOME": str(home / "flywheel"),
        "FLYWHEEL_PROJECT": str(project),
        "FLYWHEEL_TRAIN_QUEUE": "gpu",
        "PYTHONPATH": ":".join([str(project / "plugins"), str(project / "dags"), str(project)]),
        "PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin",
    }
    for worker in ("worker", "worker-gpu", "triggerer"):
        if part == worker:
            key = "TRIGGER" if worker == "triggerer" else "WORKER"
            env[f"AIRFLOW__LOGGING__{key}_LOG_SERVER_PORT"] = str(layout.ports[f"log-{worker}"])
    return env


def migrate_airflow(layout: Layout, project: Path) -> None:
    """``airflow db migrate``, Flywheel's pools, and the admin's password for the simple auth manager."""
    env = airflow_env(layout, project, "migrate")
    layout.airflow_home("migrate").mkdir(parents=True, exist_ok=True)
    airflow = str(BIN / "airflow")
    _run([airflow, "db", "migrate"], "airflow db migrate", env, layout.airflow_home("migrate"))
    pools = layout.airflow_home("migrate") / "pools.json"
    pools.write_text(
        json.dumps(
            {
                "gpu": {"slots": 1, "description": "training", "include_deferred": False},
                "dvc": {"slots": 1, "description": "DVC workspace", "include_deferred": False},
            }
        )
    )
    _run([airflow, "pools", "import", str(pools)], "airflow pools import", env)
    passwords = layout.state / "airflow" / "passwords.json"
    passwords.write_text(json.dumps({AIRFLOW_ADMIN: layout.secrets["airflow_admin_password"]}) + "\n")
    passwords.chmod(0o600)


def airflow(layout: Layout, project: Path, part: str, extra: Mapping[str, str] | None = None) -> Spec:
    """One Airflow process; the api-server is ready when its health endpoint and the task execution API's
    answer (the execution API is built on its first request: the first task does not wait for that)."""
    home = layout.airflow_home(part)
    home.mkdir(parents=True, exist_ok=True)
    airflow_bin = str(BIN / "airflow")
    queue = dict(WORKERS).get(part)
    if queue:
        argv = [
            airflow_bin,
            "celery",
            "worker",
            "--queues",
            queue,
            "--concurrency",
            "1",
            "--celery-hostname",
            f"{part}@%h",
        ]
    else:
        argv = [airflow_bin, part]
    port = layout.ports["api"] if part == "api-server" else 0
    health = (f"{layout.api_url}/api/v2/monitor/health", f"{layout.api_url}/execution/health")

    def ready(spec: Spec, log: Path) -> bool:
        if part == "api-server":
            return all(http_ok(url) for url in health)
        if queue:  # Celery says "<hostname> ready." once connected to the broker
            return f"{part}@" in _text(log) and " ready." in _text(log)
        return True

    env = {**airflow_env(layout, project, part), **(extra or {})}
    return Spec(part, argv, port, layout.api_url, ready, env=env, cwd=home, start_timeout_s=240)
