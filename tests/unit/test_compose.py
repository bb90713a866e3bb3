"""docker-compose.yml, checked statically (no Docker engine runs on these machines).

What the full stack must hold (README.md, "Full stack"): Airflow's api-server, scheduler, dag-processor,
triggerer and CeleryExecutor workers (one on the `gpu` queue with a GPU reserved, behind the `gpu` profile)
sharing one configuration, on PostgreSQL and Redis, the workers waiting for the api-server's health; Kafka in
KRaft mode and the params ingesting from it; a maintained S3 server with its buckets; MLflow in its own image
behind basic auth, on PostgreSQL with artifacts on S3; the DVC remote on S3; StatsD metrics with the right
labels; Prometheus scraping the services that exist on the ports they listen on, and Grafana provisioned with
that Prometheus and the Flywheel dashboard; an init process; the git commit baked in; layer caching; secrets
from .env only.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml

AIRFLOW_SERVICES = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-worker-gpu",
    "airflow-init",
)
INTERPOLATION = re.compile(
    r"(?<!\$)\$\{(\w+)[^}]*\}"
)  # ${VAR}, ${VAR:?message}; not $${VAR} (the container's)


def load(repo_root):
    return yaml.safe_load((repo_root / "docker-compose.yml").read_text())


@pytest.fixture
def compose(repo_root):
    return load(repo_root)


@pytest.fixture
def services(compose):
    return compose["services"]


def one_shot(services) -> set[str]:
    """Jobs other services wait for with ``service_completed_successfully`` (migrations, buckets, topics)."""
    return {
        name
        for s in services.values()
        for name, dep in (s.get("depends_on") or {}).items()
        if dep.get("condition") == "service_completed_successfully"
    }


def command_text(service) -> str:
    command = service.get("command") or []
    return " ".join(command) if isinstance(command, list) else command


def test_compose_parses_and_services_are_healthchecked_and_pinned(services):
    assert {
        "postgres",
        "redis",
        "kafka",
        "s3",
        "mlflow",
        "statsd-exporter",
        "metrics-exporter",
        "prometheus",
        "grafana",
        *AIRFLOW_SERVICES,
    } <= set(services)
    jobs = one_shot(services)
    for name, service in services.items():
        image = service.get("image", "")
        assert re.search(r":[\w.-]+$", image) and not image.endswith(":latest"), f"{name}: pin the image tag"
        if name in jobs:
            assert service.get("restart") == "no", f'{name} is a one-shot job: set restart: "no"'
        else:
            assert "healthcheck" in service and service["healthcheck"].get("test"), (
                f"service {name} needs a healthcheck"
            )


def test_depends_on_waits_for_health_or_completion(services):
    jobs = one_shot(services)
    for name, service in services.items():
        for dep, spec in (service.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on an unknown service {dep}"
            condition = spec.get("condition")
            assert condition in ("service_healthy", "service_completed_successfully"), (
                f"{name} → {dep}: use condition service_healthy (or service_completed_successfully for a job)"
            )
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], (
                    f"{name} waits for {dep} to be healthy: give it a healthcheck"
                )
            else:
                assert dep in jobs
    for name in AIRFLOW_SERVICES:
        deps = services[name].get("depends_on") or {}
        assert {"postgres", "redis"} <= set(deps), f"{name} must wait for postgres and redis"
        if name != "airflow-init":
            assert deps.get("airflow-init", {}).get("condition") == "service_completed_successfully", name


def test_compose_holds_no_secrets_and_every_variable_is_in_the_example(repo_root):
    text = (repo_root / "docker-compose.yml").read_text()
    literal = INTERPOLATION.sub("", text).replace("$${", "${")
    leaks = re.findall(
        r"(?im)^[ \t-]*[\w.-]*(?:password|passwd|secret|token|_key)\w*[ \t]*[:=][ \t]*[\"']?"
        r"([^\s\"'$][^\s\"']*)",
        literal,
    )
    assert leaks == [], f"secret-looking literals in docker-compose.yml: {leaks}; use ${{VAR}} from .env"
    used = set(INTERPOLATION.findall(text))
    example = (repo_root / ".env.example").read_text()
    defined = set(re.findall(r"^(\w+)=", example, flags=re.M))
    assert used <= defined, f"add {sorted(used - defined)} to .env.example"
    assert defined <= used, f"{sorted(defined - used)} in .env.example are not used by docker-compose.yml"
    assert all(line.endswith("=") for line in example.splitlines() if re.match(r"^\w+=", line)), (
        ".env.example must hold no usable values"
    )
    for secret in (
        "POSTGRES_PASSWORD",
        "REDIS_PASSWORD",
        "S3_SECRET_ACCESS_KEY",
        "MLFLOW_ADMIN_PASSWORD",
        "MLFLOW_FLASK_SECRET_KEY",
        "AIRFLOW_FERNET_KEY",
        "AIRFLOW_JWT_SECRET",
        "AIRFLOW_API_SECRET_KEY",
        "AIRFLOW_ADMIN_PASSWORD",
        "GRAFANA_ADMIN_PASSWORD",
    ):
        assert re.search(rf"\$\{{{secret}:\?", text), (
            f"require {secret} with ${{{secret}:?...}}: no silent empty value"
        )


def test_airflow_services_share_one_configuration(repo_root, services):
    text = (repo_root / "docker-compose.yml").read_text()
    assert re.search(r"^x-airflow-common: &airflow-common$", text, flags=re.M)
    blocks = re.split(r"(?m)^  (?=[\w-]+:\s*(?:#.*)?$)", text.split("\nservices:\n", 1)[1])
    merged = {b.split(":", 1)[0] for b in blocks if "<<: *airflow-common" in b}
    assert set(AIRFLOW_SERVICES) <= merged, (
        f"{sorted(set(AIRFLOW_SERVICES) - merged)}: add <<: *airflow-common"
    )
    reference = services["airflow-scheduler"]["environment"]
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert reference.items() <= env.items(), f"{name} drifts from the shared Airflow configuration"
        assert services[name]["volumes"] == services["airflow-scheduler"]["volumes"], name
        assert services[name].get("build"), f"{name}: build the image from the repository's Dockerfile"


def test_airflow_runs_celery_behind_authentication_with_statsd(services):
    env = services["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("fab_auth_manager.FabAuthManager")
    assert not any("ALL_ADMINS" in key for key in env), "the API must ask for a login"
    assert (
        env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
        and "@redis:" in env["AIRFLOW__CELERY__BROKER_URL"]
    )
    assert "@postgres:5432/airflow" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert env["AIRFLOW__METRICS__STATSD_ON"] == "True"
    assert env["AIRFLOW__METRICS__STATSD_HOST"] in services
    assert "--statsd.listen-udp=:" + env["AIRFLOW__METRICS__STATSD_PORT"] in command_text(
        services["statsd-exporter"]
    )
    for name, role in (
        ("airflow-apiserver", "api-server"),
        ("airflow-scheduler", "scheduler"),
        ("airflow-dag-processor", "dag-processor"),
        ("airflow-triggerer", "triggerer"),
        ("airflow-worker", "celery worker"),
    ):
        assert role in command_text(services[name]), f"{name} should run `airflow {role}`"


def test_a_gpu_worker_serves_the_training_queue_behind_the_gpu_profile(repo_root, services):
    worker = services["airflow-worker-gpu"]
    assert worker.get("profiles") == ["gpu"], "without the NVIDIA runtime the GPU worker must not start"
    assert "--queues gpu" in command_text(worker)
    [device] = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    # the train queue follows the profile: default (the CPU worker's) unless the gpu profile is on
    queue = services["airflow-scheduler"]["environment"]["FLYWHEEL_TRAIN_QUEUE"]
    assert queue == "${FLYWHEEL_TRAIN_QUEUE:-default}"
    assert "--queues default" in command_text(services["airflow-worker"])
    assert not any(s.get("profiles") for n, s in services.items() if n != "airflow-worker-gpu")
    init = (repo_root / "docker" / "airflow-init.sh").read_text()
    assert "COMPOSE_PROFILES" in services["airflow-init"]["environment"]
    assert re.search(r"gpu,\*gpu\*\) ;;", init) and "exit 1" in init, (
        "airflow-init refuses gpu without the profile"
    )


def test_workers_scheduler_and_triggerer_wait_for_a_healthy_api_server(services):
    for name in (
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker",
        "airflow-worker-gpu",
    ):
        deps = services[name]["depends_on"]
        assert deps.get("airflow-apiserver", {}).get("condition") == "service_healthy", name
    assert "airflow-apiserver" not in services["airflow-apiserver"]["depends_on"]


def test_the_stack_ingests_from_kafka_with_its_params_mounted(repo_root, services):
    env = services["airflow-scheduler"]["environment"]
    mounted = {}  # target: source, for the read-only mounts (source:target:ro)
    for volume in services["airflow-scheduler"]["volumes"]:
        source, target, mode = (volume.rsplit(":", 2) + ["", ""])[:3]
        if mode == "ro":
            mounted[target] = source
    source = mounted[env["FLYWHEEL_PARAMS"]]
    assert source == "${FLYWHEEL_PARAMS_FILE:-./docker/params.yaml}", (
        "params.yaml is mounted, and overridable"
    )
    stack = yaml.safe_load((repo_root / "docker" / "params.yaml").read_text())
    project = yaml.safe_load((repo_root / "params.yaml").read_text())
    assert stack["ingest"]["sources"] == ["kafka"] and stack["storage"]["root"].startswith("s3://flywheel/")
    stack["ingest"]["sources"], stack["storage"]["root"] = (
        project["ingest"]["sources"],
        project["storage"]["root"],
    )
    assert stack == project, "docker/params.yaml is params.yaml with only the lake and the source changed"


def test_the_statsd_mapping_labels_airflow_s_metric_names(repo_root):
    mappings = yaml.safe_load((repo_root / "docker" / "statsd-mapping.yml").read_text())["mappings"]

    def labels(metric: str) -> dict[str, str]:
        for m in mappings:
            pattern = "^" + re.escape(m["match"]).replace(r"\*", r"([^.]+)") + "$"
            if found := re.match(pattern, metric):
                return {
                    k: re.sub(r"\$(\d)", lambda g: found.group(int(g.group(1))), v)
                    for k, v in (m.get("labels") or {}).items()
                }
        return {}

    # Airflow's names: dagrun.duration.<state>.<dag_id>, dag.<dag_id>.<task_id>.duration,
    # ti.finish.<dag_id>.<task_id>.<state>
    assert labels("airflow.dagrun.duration.success.flywheel_training") == {
        "state": "success",
        "dag_id": "flywheel_training",
    }
    assert labels("airflow.dag.flywheel_training.train.duration") == {
        "dag_id": "flywheel_training",
        "task_id": "train",
    }
    assert labels("airflow.ti.finish.flywheel_ingest.ingest.failed") == {
        "dag_id": "flywheel_ingest",
        "task_id": "ingest",
        "state": "failed",
    }


def test_every_flywheel_or_mlflow_container_reaps_its_children(services):
    built = [name for name, s in services.items() if s.get("build")]
    assert {"airflow-worker", "airflow-worker-gpu", "mlflow"} <= set(built)
    for name in built:
        assert services[name].get("init") is True, f"{name}: init: true reaps dvc → flywheel → torchrun"


def test_the_image_carries_its_git_commit_for_lineage(repo_root, services):
    dockerfile = (repo_root / "Dockerfile").read_text()
    assert re.search(r"^ARG FLYWHEEL_GIT_COMMIT=", dockerfile, flags=re.M)
    assert "FLYWHEEL_GIT_COMMIT=${FLYWHEEL_GIT_COMMIT}" in dockerfile
    for name in ("airflow-worker", "airflow-worker-gpu"):
        args = services[name]["build"]["args"]
        assert args["FLYWHEEL_GIT_COMMIT"] == "${FLYWHEEL_GIT_COMMIT:-unknown}", name


def test_a_code_edit_does_not_reinstall_the_dependencies(repo_root):
    lines = (repo_root / "Dockerfile").read_text().splitlines()
    install = next(i for i, line in enumerate(lines) if "pip install" in line and "constraints.txt" in line)
    copy_code = next(i for i, line in enumerate(lines) if line.startswith("COPY pipelines"))
    copied_before = " ".join(line for line in lines[:install] if line.startswith("COPY"))
    assert install < copy_code and "pipelines" not in copied_before, "install the pins before copying code"
    ignored = set((repo_root / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".flywheel", "tests", "**/__pycache__"} <= ignored


def test_mlflow_runs_its_own_slim_image_behind_basic_auth(repo_root, services):
    mlflow = services["mlflow"]
    assert mlflow["build"]["dockerfile"] == "docker/mlflow.Dockerfile" and mlflow["image"] != "flywheel:0.1.0"
    dockerfile = (repo_root / "docker" / "mlflow.Dockerfile").read_text()
    assert "-e '.[stack]'" not in dockerfile and re.search(
        r"pip install -c constraints\.txt mlflow", dockerfile
    )
    script = (repo_root / "docker" / "mlflow-server.sh").read_text()
    assert "--app-name basic-auth" in script and "MLFLOW_AUTH_ADMIN_PASSWORD" in script
    assert mlflow["environment"]["MLFLOW_AUTH_ADMIN_PASSWORD"] == "${MLFLOW_ADMIN_PASSWORD}"
    assert "mlflow_auth" in (repo_root / "docker" / "postgres-init.sql").read_text()
    env = services["airflow-worker"]["environment"]
    assert env["MLFLOW_TRACKING_USERNAME"] and env["MLFLOW_TRACKING_PASSWORD"].startswith(
        "${MLFLOW_ADMIN_PASSWORD:?"
    )


def test_the_s3_server_is_a_maintained_image(services):
    image = services["s3"]["image"]
    assert not image.startswith(("minio/", "quay.io/minio/")), "MinIO's community images get no fixes"
    assert image.startswith("chrislusf/seaweedfs:")


def test_kafka_runs_in_kraft_mode(services):
    env = services["kafka"]["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] and not any("zookeeper" in s for s in services)
    assert services["airflow-scheduler"]["environment"]["FLYWHEEL_KAFKA_BOOTSTRAP"] == "kafka:9092"


def test_s3_buckets_hold_mlflow_artifacts_the_lake_and_the_dvc_remote(repo_root, services):
    buckets = set(services["s3-init"]["environment"]["BUCKETS"].split())
    mlflow_env = services["mlflow"]["environment"]
    assert "@postgres:5432/mlflow" in mlflow_env["MLFLOW_DB_URI"]
    artifacts = mlflow_env["MLFLOW_ARTIFACTS_DESTINATION"]
    remote = services["airflow-scheduler"]["environment"]["FLYWHEEL_DVC_REMOTE"]
    lake = yaml.safe_load((repo_root / "docker" / "params.yaml").read_text())["storage"]["root"]
    for url in (artifacts, remote, lake):
        assert url.startswith("s3://") and url[5:].split("/")[0] in buckets, (
            f"{url}: create its bucket in s3-init"
        )
    assert mlflow_env["MLFLOW_S3_ENDPOINT_URL"] == "http://s3:9000"
    assert "mlflow" in mlflow_env["MLFLOW_SERVER_ALLOWED_HOSTS"].split(
        ","
    )  # the workers call it by that name


def test_state_lives_in_named_volumes_and_mounted_files_exist(repo_root, compose, services):
    declared = set(compose["volumes"])
    for name, service in services.items():
        for volume in service.get("volumes") or []:
            source = re.sub(r"^\$\{\w+:-([^}]*)\}", r"\1", volume).split(":", 1)[0]  # ${VAR:-default}
            if source.startswith((".", "/")):
                assert (repo_root / source).exists(), (
                    f"{name} mounts {source}, which is not in the repository"
                )
            else:
                assert source in declared, f"{name} uses volume {source}: declare it under volumes:"
    for name, path in (
        ("postgres", "/var/lib/postgresql/data"),
        ("kafka", "/var/lib/kafka/data"),
        ("s3", "/data"),
        (
            "airflow-scheduler",
            "/var/lib/flywheel-git",
        ),  # the workspace's git remote; FLYWHEEL_HOME is scratch
    ):
        assert any(v.endswith(":" + path) and not v.startswith(".") for v in services[name]["volumes"]), name
    assert (repo_root / "docker" / "airflow-init.sh").exists()


def test_the_image_installs_the_project_with_its_pins(repo_root):
    dockerfile = (repo_root / "Dockerfile").read_text()
    assert re.search(r"pip install .*-c constraints\.txt", dockerfile)
    assert "-e '.[stack]'" in dockerfile
    assert re.search(r"^USER (?!root)", dockerfile, flags=re.M), "run as a non-root user"
    pyproject = (repo_root / "pyproject.toml").read_text()
    constraints = (repo_root / "constraints.txt").read_text().lower()
    stack = re.search(r"^stack = \[(.*?)\]", pyproject, flags=re.M | re.S).group(1)
    for package in re.findall(r'"([\w.-]+)', stack):
        assert f"\n{package.lower()}==" in constraints, f"pin {package} in constraints.txt"


def mounts(service) -> dict[str, str]:
    """``{target: source}`` of a service's bind mounts from the repository (``./source:target[:ro]``)."""
    found = {}
    for volume in service.get("volumes") or []:
        source, target = re.sub(r"^\$\{\w+:-([^}]*)\}", r"\1", volume).split(":")[:2]
        if source.startswith("./"):
            found[target] = source[2:]
    return found


def listen_port(service) -> int:
    """The port a service's command listens on: ``--port N`` or ``--web.listen-address=:N``."""
    command = command_text(service)
    found = re.search(r"--port (\d+)\b", command) or re.search(r"listen-address=[\w.]*:(\d+)\b", command)
    assert found, f"no listening port in the command {command!r}"
    return int(found.group(1))


def prometheus_config(repo_root, services) -> dict:
    prometheus = services["prometheus"]
    [config] = re.findall(r"--config\.file=(\S+)", command_text(prometheus))
    return yaml.safe_load((repo_root / mounts(prometheus)[config]).read_text())


def test_prometheus_scrapes_flywheel_and_airflow_on_services_and_ports_that_exist(repo_root, services):
    jobs = {
        job["job_name"]: [t for c in job["static_configs"] for t in c["targets"]]
        for job in prometheus_config(repo_root, services)["scrape_configs"]
    }
    assert {"flywheel", "airflow"} <= set(jobs), jobs
    for job, targets in jobs.items():
        for target in targets:
            host, port = target.rsplit(":", 1)
            name = "prometheus" if host == "localhost" else host
            assert name in services, f"job {job} scrapes {target}: no service {host}"
            assert listen_port(services[name]) == int(port), (
                f"job {job} scrapes {target}; {name} listens on {listen_port(services[name])}"
            )
    assert jobs["flywheel"] == ["metrics-exporter:9108"] and jobs["airflow"] == ["statsd-exporter:9102"]
    assert "flywheel metrics-exporter" in command_text(services["metrics-exporter"])
    assert "--statsd.mapping-config=/etc/statsd/mapping.yml" in command_text(services["statsd-exporter"])
    assert mounts(services["statsd-exporter"])["/etc/statsd/mapping.yml"] == "docker/statsd-mapping.yml"
    assert services["prometheus"]["depends_on"].keys() >= {"metrics-exporter", "statsd-exporter"}


def test_the_metrics_exporter_reads_the_workers_mlflow_and_lake_with_credentials(services):
    exporter, worker = services["metrics-exporter"], services["airflow-worker"]
    env, shared = exporter["environment"], worker["environment"]
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "AWS_ENDPOINT_URL", "FLYWHEEL_PARAMS"):
        assert env[key] == shared[key], (
            f"metrics-exporter's {key} is {env[key]!r}; the workers' {shared[key]!r}"
        )
    assert env["MLFLOW_TRACKING_PASSWORD"].startswith("${MLFLOW_ADMIN_PASSWORD")
    assert env["AWS_SECRET_ACCESS_KEY"].startswith("${S3_SECRET_ACCESS_KEY")
    assert mounts(exporter)[env["FLYWHEEL_PARAMS"]] == mounts(worker)[env["FLYWHEEL_PARAMS"]]
    assert exporter["depends_on"]["mlflow"]["condition"] == "service_healthy"
    assert exporter["image"] == worker["image"] and exporter.get("init") is True


def test_grafana_provisions_the_prometheus_service_and_the_flywheel_dashboard(repo_root, services):
    grafana = services["grafana"]
    mounted = mounts(grafana)
    provisioning = {t.rsplit("/", 1)[-1]: repo_root / s for t, s in mounted.items() if "/provisioning/" in t}
    assert set(provisioning) == {"datasources", "dashboards"}, mounted
    [datasource] = [
        d
        for f in sorted(provisioning["datasources"].glob("*.yml"))
        for d in yaml.safe_load(f.read_text())["datasources"]
    ]
    dashboard = json.loads((repo_root / "docker" / "grafana" / "flywheel.json").read_text())
    [variable] = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert datasource["type"] == variable["query"] == "prometheus" and datasource["isDefault"] is True
    host, port = re.fullmatch(r"http://([\w-]+):(\d+)", datasource["url"]).groups()
    assert host == "prometheus" and int(port) == listen_port(services["prometheus"]), datasource["url"]
    [provider] = [
        p
        for f in sorted(provisioning["dashboards"].glob("*.yml"))
        for p in yaml.safe_load(f.read_text())["providers"]
    ]
    folder = provider["options"]["path"].rstrip("/")
    held = {t.rsplit("/", 1)[-1]: s for t, s in mounted.items() if t.rsplit("/", 1)[0] == folder}
    assert held == {"flywheel.json": "docker/grafana/flywheel.json"}, (
        f"the dashboard provider reads {folder}, which holds {held}; expected flywheel.json"
    )
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    assert grafana["depends_on"]["prometheus"]["condition"] == "service_healthy"
    for name in ("prometheus", "grafana"):
        assert all(p.startswith("127.0.0.1:") for p in services[name]["ports"]), f"{name}: this machine only"
