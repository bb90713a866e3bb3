"""Where the stack keeps its state, its ports and secrets, and the environment each part gets.

``<state>`` is ``$FLYWHEEL_STACK_DIR``, else ``$FLYWHEEL_HOME/stack`` (home default ``./.flywheel``):

```
stack.json         ports chosen at the first start (kept, so clients keep their addresses), secrets (0600)
stack.env          the client environment (``source`` it): tracking URI and credentials, S3, Kafka
params.yaml        the stack's params: the lake on S3, ingest from Kafka (written once; edit it freely)
postgres/          PostgreSQL's data folder (Airflow's metadata, MLflow's store and its users)
workspace.git      the DVC workspace's shared git remote (bare): what every worker clones and pushes
services/          Kafka (and ZooKeeper) and the S3 API, as ``flywheel services`` runs them
metrics/           ``flywheel metrics-exporter``'s FLYWHEEL_HOME (scratch space only)
prometheus/        prometheus.yml (written at every start) and Prometheus's TSDB (``data/``)
airflow/<part>/    each Airflow process's own AIRFLOW_HOME and working directory; a worker's
                   FLYWHEEL_HOME is ``airflow/<worker>/flywheel``, scratch space only
logs/              one log per process; ``processes.json`` their PIDs
```
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipelines.stack.errors import StackError

PORTS = ("postgres", "redis", "kafka", "zookeeper", "s3", "mlflow", "api", "metrics", "prometheus")
WORKER_LOG_PORTS = ("worker", "worker-gpu", "triggerer")
BUCKET = "flywheel"
MLFLOW_ADMIN = "admin"
AIRFLOW_ADMIN = "admin"
DATABASES = ("airflow", "mlflow", "mlflow_auth")


def state_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$FLYWHEEL_STACK_DIR``, else ``$FLYWHEEL_HOME/stack`` (home default ``./.flywheel``)."""
    env = os.environ if env is None else env
    if env.get("FLYWHEEL_STACK_DIR"):
        return Path(env["FLYWHEEL_STACK_DIR"]).resolve()
    return (Path(env.get("FLYWHEEL_HOME") or ".flywheel") / "stack").resolve()


@dataclass(frozen=True)
class Layout:
    """The stack of one state folder: its paths, ports and secrets."""

    state: Path
    ports: dict[str, int]
    secrets: dict[str, str]

    @property
    def postgres_data(self) -> Path:
        return self.state / "postgres" / "data"

    @property
    def postgres_socket(self) -> Path:
        return self.state / "postgres" / "run"

    @property
    def workspace_remote(self) -> Path:
        return self.state / "workspace.git"

    @property
    def params_path(self) -> Path:
        return self.state / "params.yaml"

    @property
    def services_state(self) -> Path:
        return self.state / "services"

    def airflow_home(self, part: str) -> Path:
        return self.state / "airflow" / part

    def database_url(self, name: str, driver: str = "postgresql") -> str:
        password = self.secrets["postgres_password"]
        return f"{driver}://postgres:{password}@127.0.0.1:{self.ports['postgres']}/{name}"

    @property
    def broker_url(self) -> str:
        return f"redis://:{self.secrets['redis_password']}@127.0.0.1:{self.ports['redis']}/0"

    @property
    def tracking_uri(self) -> str:
        return f"http://127.0.0.1:{self.ports['mlflow']}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def metrics_url(self) -> str:
        """``flywheel metrics-exporter``: Flywheel's series, scraped by the stack's Prometheus."""
        return f"http://127.0.0.1:{self.ports['metrics']}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['prometheus']}"


def load(state: Path, env: Mapping[str, str] | None = None, choose_port: Any = None) -> Layout:
    """The layout of ``state``: ports and secrets from ``stack.json``, chosen (and kept) on first use.

    The MLflow admin's credentials come from ``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD``
    when set at the first start; otherwise a random password is generated. Every secret is written
    once, to ``stack.json`` (mode 0600); rotating them is in docs/operations.md.
    """
    env = os.environ if env is None else env
    path = state / "stack.json"
    saved: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    ports = dict(saved.get("ports") or {})
    for name in (*PORTS, *(f"log-{p}" for p in WORKER_LOG_PORTS)):
        if name not in ports:
            if choose_port is None:
                raise StackError(f"stack state {path} has no port for {name}; run `flywheel stack up`")
            ports[name] = int(choose_port())
    keys = dict(saved.get("secrets") or {})
    if env.get("MLFLOW_TRACKING_USERNAME", MLFLOW_ADMIN) != MLFLOW_ADMIN:
        raise StackError(
            f"MLFLOW_TRACKING_USERNAME is {env['MLFLOW_TRACKING_USERNAME']!r}; the stack's MLflow admin is "
            f"{MLFLOW_ADMIN!r}: unset it, or set it to {MLFLOW_ADMIN!r}"
        )
    defaults = {
        "postgres_password": lambda: secrets.token_urlsafe(18),
        "redis_password": lambda: secrets.token_urlsafe(18),
        "mlflow_admin_password": lambda: env.get("MLFLOW_TRACKING_PASSWORD") or secrets.token_urlsafe(18),
        "mlflow_secret_key": lambda: secrets.token_urlsafe(32),
        "airflow_admin_password": lambda: secrets.token_urlsafe(12),
        "airflow_jwt_secret": lambda: secrets.token_urlsafe(32),
        "airflow_secret_key": lambda: secrets.token_urlsafe(32),
        "airflow_fernet_key": _fernet_key,
    }
    for name, make in defaults.items():
        keys.setdefault(name, make())
    layout = Layout(state=state, ports=ports, secrets=keys)
    if saved.get("ports") != ports or saved.get("secrets") != keys:
        state.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"ports": ports, "secrets": keys}, indent=2, sort_keys=True) + "\n")
        tmp.chmod(0o600)
        tmp.replace(path)
    return layout


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def client_env(layout: Layout) -> dict[str, str]:
    """What Flywheel's clients need: MLflow with its credentials, S3, Kafka, the DVC remote and git remote."""
    return {
        "FLYWHEEL_PARAMS": str(layout.params_path),
        "MLFLOW_TRACKING_URI": layout.tracking_uri,
        "MLFLOW_TRACKING_USERNAME": MLFLOW_ADMIN,
        "MLFLOW_TRACKING_PASSWORD": layout.secrets["mlflow_admin_password"],
        "AWS_ENDPOINT_URL": layout.s3_endpoint,
        "AWS_ACCESS_KEY_ID": "flywheel",
        "AWS_SECRET_ACCESS_KEY": "flywheel",
        "AWS_DEFAULT_REGION": "us-east-1",
        "FLYWHEEL_KAFKA_BOOTSTRAP": f"127.0.0.1:{layout.ports['kafka']}",
        "FLYWHEEL_DVC_REMOTE": f"s3://{BUCKET}/dvc",
        "FLYWHEEL_WORKSPACE_REMOTE": str(layout.workspace_remote),
        "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING": "false",
        "GX_ANALYTICS_ENABLED": "false",
        "DVC_NO_ANALYTICS": "1",
    }


def write_client_env(layout: Layout) -> Path:
    """``stack.env`` (mode 0600): ``set -a; . .flywheel/stack/stack.env`` points a shell at the stack."""
    path = layout.state / "stack.env"
    path.write_text("".join(f"{k}={v}\n" for k, v in client_env(layout).items()))
    path.chmod(0o600)
    return path


def write_params(layout: Layout, project_params: Path) -> Path:
    """The stack's ``params.yaml``: the project's, the lake on S3, Kafka as the source; kept if present."""
    path = layout.params_path
    if not path.exists():
        params = yaml.safe_load(project_params.read_text())
        params.setdefault("storage", {})["root"] = f"s3://{BUCKET}/lake"
        params["ingest"]["sources"] = ["kafka"]
        path.write_text(
            "# The stack's params (flywheel stack up): the project's params.yaml with the lake on S3 and\n"
            "# Kafka as the source. Written once; edit it freely.\n" + yaml.safe_dump(params, sort_keys=False)
        )
    return path
