"""The stack's state folder: ports chosen once and kept, secrets kept private, the client environment."""

from __future__ import annotations

import itertools
import json
import stat

import pytest
import yaml

from pipelines.stack import StackError, client_env, load, system
from pipelines.stack import layout as layouts
from tests.support.install import ROOT


def ports():
    return itertools.count(41000).__next__


def test_ports_and_secrets_are_chosen_once_and_kept_private(tmp_path):
    first = load(tmp_path, env={}, choose_port=ports())
    again = load(tmp_path, env={})  # no port chooser: everything comes from stack.json
    assert again == first
    assert len(set(first.ports.values())) == len(first.ports)  # one port per part
    saved = tmp_path / "stack.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert json.loads(saved.read_text())["secrets"]["postgres_password"] == first.secrets["postgres_password"]


def test_the_mlflow_admin_takes_the_password_from_the_environment_at_the_first_start(tmp_path):
    layout = load(tmp_path, env={"MLFLOW_TRACKING_PASSWORD": "from-the-env-123"}, choose_port=ports())
    assert layout.secrets["mlflow_admin_password"] == "from-the-env-123"
    env = client_env(layout)
    assert (
        env["MLFLOW_TRACKING_USERNAME"] == "admin" and env["MLFLOW_TRACKING_PASSWORD"] == "from-the-env-123"
    )
    assert env["MLFLOW_TRACKING_URI"] == f"http://127.0.0.1:{layout.ports['mlflow']}"
    assert env["FLYWHEEL_DVC_REMOTE"].startswith("s3://") and env["FLYWHEEL_WORKSPACE_REMOTE"].endswith(
        ".git"
    )


def test_another_mlflow_user_is_refused_naming_the_admin(tmp_path):
    with pytest.raises(StackError, match="MLFLOW_TRACKING_USERNAME is 'alice'.*'admin'"):
        load(tmp_path, env={"MLFLOW_TRACKING_USERNAME": "alice"}, choose_port=ports())


def test_a_state_folder_without_its_ports_is_refused(tmp_path):
    with pytest.raises(StackError, match="no port for postgres; run `flywheel stack up`"):
        load(tmp_path, env={})


def test_the_stack_params_put_the_lake_on_s3_and_ingest_from_kafka_and_are_kept(tmp_path):
    layout = load(tmp_path, env={}, choose_port=ports())
    path = layouts.write_params(layout, ROOT / "params.yaml")
    params = yaml.safe_load(path.read_text())
    assert params["storage"]["root"] == "s3://flywheel/lake" and params["ingest"]["sources"] == ["kafka"]
    path.write_text(path.read_text() + "# edited\n")
    layouts.write_params(layout, ROOT / "params.yaml")
    assert path.read_text().endswith("# edited\n")  # a person's edits survive the next start


def test_missing_debian_packages_are_named_with_the_apt_command(tmp_path, monkeypatch):
    monkeypatch.setattr(system, "POSTGRES_ROOT", tmp_path / "none")
    monkeypatch.setattr(system.shutil, "which", lambda name: None)
    with pytest.raises(
        StackError,
        match=r"\['postgresql', 'redis-server', 'prometheus'\].*"
        r"apt-get install -y postgresql redis-server prometheus",
    ):
        system.require()


def test_the_newest_postgresql_is_found(tmp_path):
    for major in ("13", "15"):
        for binary in ("postgres", "initdb"):
            (tmp_path / major / "bin").mkdir(parents=True, exist_ok=True)
            (tmp_path / major / "bin" / binary).write_text("")
    assert system.postgres_bin(tmp_path) == tmp_path / "15" / "bin"
    assert system.postgres_bin(tmp_path / "absent") is None


def test_a_folder_without_a_stack_has_nothing_to_stop_or_show(tmp_path):
    from pipelines.stack import down, status

    assert down(tmp_path) == {}
    assert status(tmp_path) == {"state": str(tmp_path), "parts": {}, "running": False}


def test_prometheus_scrapes_the_stack_s_metrics_exporter(tmp_path):
    from pipelines.stack import monitoring

    layout = load(tmp_path, env={}, choose_port=ports())
    config = monitoring.prometheus_config(layout)
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    assert targets == {
        "flywheel": [f"127.0.0.1:{layout.ports['metrics']}"],
        "prometheus": [f"127.0.0.1:{layout.ports['prometheus']}"],
    }
    assert layout.ports["metrics"] != layout.ports["prometheus"]


def test_the_metrics_exporter_reads_the_stack_s_mlflow_and_lake_as_the_admin(tmp_path):
    from pipelines.stack import monitoring

    layout = load(tmp_path, env={}, choose_port=ports())
    spec = monitoring.metrics_exporter(layout, ROOT)
    assert spec.argv[-4:] == ["--host", "127.0.0.1", "--port", str(layout.ports["metrics"])]
    assert spec.env["MLFLOW_TRACKING_URI"] == layout.tracking_uri
    assert spec.env["MLFLOW_TRACKING_PASSWORD"] == layout.secrets["mlflow_admin_password"]
    assert spec.env["FLYWHEEL_PARAMS"] == str(layout.params_path)  # the lake on S3 (storage.root)
    assert spec.env["AWS_ENDPOINT_URL"] == layout.s3_endpoint
    assert not any(layout.secrets["mlflow_admin_password"] in arg for arg in spec.argv)  # ps shows argv


def test_a_state_folder_from_before_the_metrics_parts_gets_their_ports_at_the_next_start(tmp_path):
    first = load(tmp_path, env={}, choose_port=ports())
    saved = json.loads((tmp_path / "stack.json").read_text())
    for name in ("metrics", "prometheus"):
        del saved["ports"][name]
    (tmp_path / "stack.json").write_text(json.dumps(saved))
    with pytest.raises(StackError, match="no port for metrics; run `flywheel stack up`"):
        load(tmp_path, env={})
    again = load(tmp_path, env={}, choose_port=itertools.count(42000).__next__)
    assert {k: v for k, v in again.ports.items() if k not in ("metrics", "prometheus")} == {
        k: v for k, v in first.ports.items() if k not in ("metrics", "prometheus")
    }
    assert again.secrets == first.secrets


def test_the_workers_reach_the_api_server_as_the_admin_to_set_a_training_run_s_note(tmp_path):
    from pipelines.stack import parts

    layout = load(tmp_path, env={}, choose_port=ports())
    env = parts.airflow_env(layout, ROOT, "worker")
    conn = json.loads(env["AIRFLOW_CONN_FLYWHEEL_AIRFLOW_API"])
    assert (conn["host"], conn["port"]) == ("127.0.0.1", layout.ports["api"])
    assert (conn["login"], conn["password"]) == ("admin", layout.secrets["airflow_admin_password"])
