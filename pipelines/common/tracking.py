"""The MLflow connection: the tracking server check, a client, experiments, and the tag size limit.

Stages decide what to log; this module only connects. With the embedded default the tracking URI is
a SQLite file; in production an HTTP server, checked before anything is written so that a run fails
naming the URI instead of half-way through.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.common.errors import FlywheelError
from pipelines.common.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

MAX_TAG = 8000  # MLflow's limit on a run tag value (model version tags allow more); longer values are cut


class TrackingUnavailable(FlywheelError):
    """The MLflow tracking server does not answer."""


def require_tracking(uri: str, timeout: float = 5.0) -> None:
    """Fail fast, naming the URI, when an HTTP tracking server does not answer its health check."""
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as response:
            if response.status == 200:
                return
            problem = f"HTTP {response.status}"
    except (urllib.error.URLError, OSError) as exc:
        problem = str(getattr(exc, "reason", exc))
    raise TrackingUnavailable(
        f"MLflow tracking server {uri} is unreachable ({problem}); expected it to "
        f"answer {uri.rstrip('/')}/health — check MLFLOW_TRACKING_URI or the "
        "flywheel_mlflow Connection"
    )


def client(settings: Settings) -> MlflowClient:
    """An MlflowClient on the settings' tracking URI (checked first); also the process-wide URI."""
    import mlflow
    from mlflow import MlflowClient

    require_tracking(settings.tracking_uri)
    mlflow.set_tracking_uri(settings.tracking_uri)
    return MlflowClient(tracking_uri=settings.tracking_uri)


def ensure_experiment(settings: Settings, name: str) -> str:
    """The id of experiment ``name``, created if missing; checks the tracking server first.

    With the embedded SQLite store, a new experiment keeps its artifacts under
    ``settings.artifact_root`` (not a ``./mlruns`` relative to the working directory).
    """
    import mlflow

    client(settings)
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    location = settings.artifact_root.as_uri() if settings.tracking_uri.startswith("sqlite:") else None
    return str(mlflow.create_experiment(name, artifact_location=location))


def clip(value: str, limit: int = MAX_TAG) -> str:
    """A tag value cut to what MLflow accepts."""
    return value[:limit]
