"""The URLs a person opens from the Airflow UI: MLflow runs, their artifacts, model versions.

Pure functions of the MLflow UI's base URL and the ids a task returned; ``None`` when a part is
missing (no UI configured, no run), so a link shows as disabled instead of pointing nowhere.
The paths are the MLflow 3 UI's routes (``#/runs/<id>``, ``#/models/<name>/versions/<v>``,
``#/experiments/<id>/runs/<id>/artifactPath/<path>``).
"""

from __future__ import annotations

from urllib.parse import quote

from pipelines.common.errors import FlywheelError


class UiLinkError(FlywheelError):
    """An MLflow UI base URL that a browser cannot open."""


def ui_base(url: str | None) -> str | None:
    """The MLflow UI's base URL without a trailing slash; ``None`` for none; refuses a non-HTTP URL."""
    if not url:
        return None
    if not url.startswith(("http://", "https://")):
        raise UiLinkError(
            f"MLflow UI URL {url!r} is not an http(s) URL; expected e.g. http://mlflow.internal:5000"
        )
    return url.rstrip("/")


def mlflow_run_url(base: str | None, run_id: str | None) -> str | None:
    """The MLflow run page (the UI finds its experiment)."""
    if not (base and run_id):
        return None
    return f"{ui_base(base)}/#/runs/{quote(run_id, safe='')}"


def mlflow_model_version_url(
    base: str | None, model_name: str | None, version: str | int | None
) -> str | None:
    """The registered model version's page."""
    if not (base and model_name and version not in (None, "")):
        return None
    return f"{ui_base(base)}/#/models/{quote(model_name, safe='')}/versions/{quote(str(version), safe='')}"


def mlflow_artifact_url(
    base: str | None, experiment_id: str | None, run_id: str | None, path: str | None
) -> str | None:
    """A run's artifact in the UI's artifact view (an HTML report renders there)."""
    if not (base and experiment_id and run_id and path):
        return None
    run = f"{ui_base(base)}/#/experiments/{quote(experiment_id, safe='')}/runs/{quote(run_id, safe='')}"
    return f"{run}/artifactPath/{quote(path.strip('/'))}"
