"""docker-compose.yml, checked statically (no Docker engine runs on these machines)."""

from __future__ import annotations

import re

import yaml


def load(repo_root):
    return yaml.safe_load((repo_root / "docker-compose.yml").read_text())


def test_compose_parses_and_services_are_healthchecked_and_pinned(repo_root):
    services = load(repo_root)["services"]
    assert {"postgres", "mlflow", "airflow"} <= set(services)
    for name, service in services.items():
        assert "healthcheck" in service, f"service {name} needs a healthcheck"
        image = service.get("image", "")
        assert re.search(r":[\w.-]+$", image) and not image.endswith(":latest"), f"{name}: pin the image tag"


def test_compose_holds_no_secrets_and_every_variable_is_in_the_example(repo_root):
    text = (repo_root / "docker-compose.yml").read_text()
    assert not re.search(r"(?i)(password|secret|key)\s*[:=]\s*[^\s${]", text.replace("$${", "${"))
    used = set(re.findall(r"\$\{(\w+)", text.replace("$${", "${")))
    example = (repo_root / ".env.example").read_text()
    defined = set(re.findall(r"^(\w+)=", example, flags=re.M))
    assert used <= defined, f"add {sorted(used - defined)} to .env.example"
    assert all(line.endswith("=") for line in example.splitlines() if re.match(r"^\w+=", line))
