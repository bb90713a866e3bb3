"""Every shared fixture of the test tiers, in one place. Airflow is pointed at a private home first.

Helpers (installations, datasets, services, a live Airflow) are plain functions in ``tests/support``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from tests.support.install import ROOT, Installation, make_installation
from tests.support.live_airflow import (
    ARTIFACTS,
    BIN,
    LiveAirflow,
    environment,
    free_port,
    prepare_airflow,
    prepare_events,
    stop,
    wait_until_ready,
)
from tests.support.sources import Broker, start_services

_SESSION_HOME = Path(tempfile.mkdtemp(prefix="flywheel-tests-"))
atexit.register(shutil.rmtree, _SESSION_HOME, ignore_errors=True)

os.environ["AIRFLOW_HOME"] = str(_SESSION_HOME / "airflow")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY"] = "1"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
os.environ["GX_ANALYTICS_ENABLED"] = "false"
os.environ["MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING"] = "false"
os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
os.environ["DVC_NO_ANALYTICS"] = "1"
# DVC keeps each repository's state (file hashes, its index) in a site cache, /var/tmp/dvc by default: the
# tests' many workspaces keep theirs in the session's home, which goes when the session ends.
os.environ["DVC_SITE_CACHE_DIR"] = str(_SESSION_HOME / "dvc-site-cache")
os.environ.setdefault("GIT_AUTHOR_NAME", "flywheel-tests")
os.environ.setdefault("GIT_AUTHOR_EMAIL", "tests@localhost")
os.environ.setdefault("GIT_COMMITTER_NAME", "flywheel-tests")
os.environ.setdefault("GIT_COMMITTER_EMAIL", "tests@localhost")
for key in ("FLYWHEEL_HOME", "FLYWHEEL_PARAMS", "FLYWHEEL_PROJECT", "MLFLOW_TRACKING_URI"):
    os.environ.pop(key, None)
for path in (ROOT / "plugins", ROOT / "dags", ROOT):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


# -- the project ------------------------------------------------------------------------------


@pytest.fixture
def repo_root() -> Path:
    return ROOT


@pytest.fixture
def demo_params():
    from pipelines.common.config import load_params

    return load_params(ROOT / "params.yaml")


@pytest.fixture
def tmp_settings(tmp_path):
    """Settings whose home (lake, workspace) and params file are in the test's own folder."""
    from pipelines.common.settings import Settings

    return Settings.from_env(
        {"FLYWHEEL_HOME": str(tmp_path), "FLYWHEEL_PARAMS": str(tmp_path / "params.yaml")}
    )


@pytest.fixture
def churn():
    """Params of the small churn dataset (``tests/support/data.py``)."""
    from tests.support.data import churn_params

    return churn_params()


@pytest.fixture
def churn_snapshot():
    """A fresh snapshot of 400 churn events, sorted by time and key; a test may change it."""
    from tests.support.data import churn_events

    return churn_events()


# -- Airflow ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def airflow_db():
    """A migrated Airflow metadata DB (SQLite) with Flywheel's pools."""
    airflow = str(Path(sys.executable).parent / "airflow")
    for args in (
        ["db", "migrate"],
        ["pools", "set", "gpu", "1", "training"],
        ["pools", "set", "dvc", "1", "dvc"],
    ):
        proc = subprocess.run([airflow, *args], capture_output=True, text=True, env=os.environ.copy())
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return os.environ["AIRFLOW_HOME"]


@pytest.fixture(scope="session")
def dagbag(airflow_db):
    """The project's DAGs, parsed once (tests/dags/test_dag_integrity.py reports import errors)."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


# -- installations -----------------------------------------------------------------------------


@pytest.fixture
def demo_install(tmp_path, monkeypatch) -> Installation:
    """The demo dataset with a short training schedule."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"].update(epochs=4, patience=2, batch_size=256)
    return make_installation(tmp_path, monkeypatch, params)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """An installation with validated demo events and a workspace where `flywheel repro` ran once."""
    from pipelines import cli
    from pipelines.demo import generator as produce

    tmp = tmp_path_factory.mktemp("install")
    home, events = tmp / "home", tmp / "events"
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["ingest"]["files"]["path"] = str(events)
    params["train"].update(epochs=3, batch_size=256, patience=2)
    params_path = tmp / "params.yaml"
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    env = {
        "FLYWHEEL_HOME": str(home),
        "FLYWHEEL_PARAMS": str(params_path),
        "FLYWHEEL_PROJECT": str(ROOT),
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
    }
    mp = pytest.MonkeyPatch()
    for key, value in env.items():
        mp.setenv(key, value)
    produce.produce(str(events), rows=4000, seed=21)
    for command in (["ingest"], ["validate"]):
        assert cli.main([*command, "--json"]) == 0
    yield Installation(home=home, params_path=params_path, events=events)
    mp.undo()


# -- services (real brokers and S3 API) ---------------------------------------------------------


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory):
    """Apache Kafka 2.3.0 with its ZooKeeper."""
    from pipelines.demo import services

    state = tmp_path_factory.mktemp("kafka-services")
    records = start_services(["kafka"], state)
    yield Broker("kafka", records["kafka"]["endpoint"], state)
    services.down(None, state)


@pytest.fixture(scope="session")
def tansu_broker(tmp_path_factory):
    """Tansu 0.6.0 (in memory)."""
    from pipelines.demo import services

    state = tmp_path_factory.mktemp("tansu-services")
    records = start_services(["tansu"], state)
    yield Broker("tansu", records["tansu"]["endpoint"], state)
    services.down(None, state)


@pytest.fixture(scope="session", params=["kafka", "tansu"])
def broker(request):
    """Each broker in turn: nothing may depend on one broker's quirks."""
    return request.getfixturevalue(f"{request.param}_broker")


@pytest.fixture(params=["kafka-python", "confluent-kafka"])
def kafka_client(request) -> str:
    """Each Kafka consumer client of the Kafka source in turn (``ingest.kafka.client``)."""
    return request.param


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """moto's S3 API server; yields its endpoint."""
    from pipelines.demo import services
    from pipelines.ingest.endpoints import S3Endpoint

    state = tmp_path_factory.mktemp("s3-services")
    records = start_services(["s3"], state)
    yield S3Endpoint(records["s3"]["endpoint"], "flywheel", "flywheel", region="us-east-1")
    services.down(None, state)


# -- a live Airflow (UI and backfill tests) -------------------------------------------------------


@pytest.fixture(scope="session")
def live_airflow(tmp_path_factory) -> LiveAirflow:
    tmp = tmp_path_factory.mktemp("live-airflow")
    port = free_port()
    env = environment(tmp, port)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    events = prepare_events(env, tmp, today)
    prepare_airflow(env, Path(env["AIRFLOW_HOME"]))
    log = tmp / "standalone.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(BIN / "airflow"), "standalone"],
            env=env,
            cwd=tmp,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    live = LiveAirflow(
        url=f"http://127.0.0.1:{port}",
        home=Path(env["FLYWHEEL_HOME"]),
        env=env,
        log=log,
        process=process,
        today=today,
    )
    try:
        output, _ = events.communicate(timeout=240)
        assert events.returncode == 0, f"preparing the demo events failed:\n{output[-4000:]}"
        wait_until_ready(live, {"flywheel_training", "flywheel_ingest"})
        yield live
    finally:
        stop(process)
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copyfile(log, ARTIFACTS / "airflow-standalone.log")


# -- the production topology (tests/stack) ---------------------------------------------------------


@pytest.fixture(scope="module")
def stack():
    """``flywheel stack`` on a private state folder, started once per module and stopped by PID after it."""
    from pipelines import stack as topology
    from pipelines.demo.airflow_runner import AirflowApi
    from tests.support.stack import AIRFLOW_ENV, TIMEOUT_S, Stack, client_environment, stack_params

    # PostgreSQL runs as its own user: the state folder must be reachable (pytest's tmp folders are not)
    state = Path(tempfile.mkdtemp(prefix="flywheel-stack-"))
    state.chmod(0o755)
    (state / "params.yaml").write_text(yaml.safe_dump(stack_params(), sort_keys=False))
    try:
        topology.up(state, ROOT, airflow_env=AIRFLOW_ENV, timeout_s=TIMEOUT_S)
        layout = topology.load(state)
        api = AirflowApi(layout.api_url, "admin", layout.secrets["airflow_admin_password"])
        yield Stack(state, layout, api, client_environment(layout, state / "client"))
    finally:
        topology.down(state)
        shutil.rmtree(state, ignore_errors=True)
