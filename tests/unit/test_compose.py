"""docker-compose.yml, checked statically (no Docker engine runs on these machines).

What the full stack must hold (README.md, "Full stack"): Airflow's api-server, scheduler, dag-processor,
triggerer and CeleryExecutor workers (one on the `gpu` queue with a GPU reserved) sharing one
configuration, on PostgreSQL and Redis; Kafka in KRaft mode; MinIO with its buckets; MLflow on
PostgreSQL with artifacts in MinIO; the DVC remote on MinIO; StatsD metrics; secrets from .env only.
"""

from __future__ import annotations

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
    assert {"postgres", "redis", "kafka", "minio", "mlflow", "statsd-exporter", *AIRFLOW_SERVICES} <= set(
        services
    )
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
        "MINIO_ROOT_PASSWORD",
        "AIRFLOW_FERNET_KEY",
        "AIRFLOW_JWT_SECRET",
        "AIRFLOW_API_SECRET_KEY",
        "AIRFLOW_ADMIN_PASSWORD",
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


def test_a_gpu_worker_serves_the_training_queue(services):
    worker = services["airflow-worker-gpu"]
    queue = services["airflow-scheduler"]["environment"]["FLYWHEEL_TRAIN_QUEUE"]
    assert f"--queues {queue}" in command_text(worker)
    [device] = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert f"--queues {queue}" not in command_text(services["airflow-worker"])


def test_kafka_runs_in_kraft_mode(services):
    env = services["kafka"]["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] and not any("zookeeper" in s for s in services)
    assert services["airflow-scheduler"]["environment"]["FLYWHEEL_KAFKA_BOOTSTRAP"] == "kafka:9092"


def test_minio_buckets_hold_mlflow_artifacts_and_the_dvc_remote(services):
    script = command_text(services["minio-init"])
    buckets = set(re.findall(r"local/([\w.-]+)", script.split("mc mb", 1)[1]))
    mlflow_env = services["mlflow"]["environment"]
    assert (
        mlflow_env["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql")
        and "@postgres:5432/mlflow" in (mlflow_env["MLFLOW_BACKEND_STORE_URI"])
    )
    artifacts = mlflow_env["MLFLOW_ARTIFACTS_DESTINATION"]
    remote = services["airflow-scheduler"]["environment"]["FLYWHEEL_DVC_REMOTE"]
    for url in (artifacts, remote):
        assert url.startswith("s3://") and url[5:].split("/")[0] in buckets, (
            f"{url}: create its bucket in minio-init"
        )
    assert mlflow_env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert "mlflow" in mlflow_env["MLFLOW_SERVER_ALLOWED_HOSTS"].split(
        ","
    )  # the workers call it by that name


def test_state_lives_in_named_volumes_and_mounted_files_exist(repo_root, compose, services):
    declared = set(compose["volumes"])
    for name, service in services.items():
        for volume in service.get("volumes") or []:
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (repo_root / source).exists(), (
                    f"{name} mounts {source}, which is not in the repository"
                )
            else:
                assert source in declared, f"{name} uses volume {source}: declare it under volumes:"
    for name, path in (
        ("postgres", "/var/lib/postgresql/data"),
        ("kafka", "/var/lib/kafka/data"),
        ("minio", "/data"),
        ("airflow-scheduler", "/var/lib/flywheel"),
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
