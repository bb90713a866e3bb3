"""Where Flywheel keeps its state, resolved once from the environment.

Endpoints and locations come from the environment (and, under Airflow, from
Connections), never from ``params.yaml``:

- ``FLYWHEEL_HOME``: the state folder (default ``./.flywheel``): the data lake,
  the DVC workspace and remote, the embedded MLflow store.
- ``FLYWHEEL_PARAMS``: the project's ``params.yaml`` (default ``./params.yaml``).
- ``FLYWHEEL_PROJECT``: the project folder holding ``dvc.yaml`` and ``pipelines/``
  (default: the folder of ``FLYWHEEL_PARAMS``).
- ``MLFLOW_TRACKING_URI``: the tracking server (default: SQLite under the home).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pipelines.common.config import Params


@dataclass(frozen=True)
class Settings:
    """Resolved locations of one Flywheel installation."""

    home: Path
    params_path: Path
    project: Path
    tracking_uri: str

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        home = Path(env.get("FLYWHEEL_HOME") or ".flywheel").resolve()
        params_path = Path(env.get("FLYWHEEL_PARAMS") or "params.yaml").resolve()
        project = Path(env.get("FLYWHEEL_PROJECT") or params_path.parent).resolve()
        tracking_uri = env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}"
        return cls(home=home, params_path=params_path, project=project, tracking_uri=tracking_uri)

    @property
    def workspace(self) -> Path:
        """The DVC workspace: a git repository where featurize/train/evaluate run."""
        return self.home / "workspace"

    @property
    def dvc_remote(self) -> Path:
        return self.home / "dvc-remote"

    @property
    def artifact_root(self) -> Path:
        """Artifact store of the embedded MLflow (used only with a local tracking URI)."""
        return self.home / "mlartifacts"

    def lake_root(self, params: Params) -> str:
        """The data lake root: ``storage.root`` from params, else ``<home>/lake``."""
        return params.storage.root or str(self.home / "lake")

    def as_env(self) -> dict[str, str]:
        """The environment that hands these settings to a child process."""
        return {
            "FLYWHEEL_HOME": str(self.home),
            "FLYWHEEL_PARAMS": str(self.params_path),
            "FLYWHEEL_PROJECT": str(self.project),
            "MLFLOW_TRACKING_URI": self.tracking_uri,
        }
