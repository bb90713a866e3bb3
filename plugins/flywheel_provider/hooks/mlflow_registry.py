"""MlflowRegistryHook: Flywheel's MLflow model registry (aliases, history, rollback) by Connection id."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from flywheel_provider.hooks.flywheel import FlywheelHook

if TYPE_CHECKING:
    from pipelines.common.config import Params
    from pipelines.common.settings import Settings


class MlflowRegistryHook(BaseHook):
    """The registry operations of :mod:`pipelines.promote` (status, rollback, the gate) on the tracking
    server of the Connection ``mlflow_conn_id`` (its host, or ``extra.tracking_uri``).

    Without that Connection, ``MLFLOW_TRACKING_URI`` or the embedded SQLite store is used
    (see :class:`FlywheelHook`). Every method checks the server first and raises
    ``pipelines.common.tracking.TrackingUnavailable`` naming its URI when it does not answer.
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = FlywheelHook.default_conn_name
    conn_type = "http"
    hook_name = "MLflow registry (Flywheel)"

    def __init__(self, mlflow_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.mlflow_conn_id = mlflow_conn_id
        self._flywheel = FlywheelHook(mlflow_conn_id)

    def settings(self) -> Settings:
        return self._flywheel.settings()

    def params(self) -> Params:
        return self._flywheel.params()

    @property
    def model_name(self) -> str:
        return self.params().promote.model_name

    def get_conn(self) -> Any:
        """An ``MlflowClient`` on the resolved tracking URI."""
        from pipelines.common import tracking

        return tracking.client(self.settings())

    def alias_version(self, alias: str) -> str | None:
        """The version behind ``alias`` (``champion``, ``challenger``, ``previous_champion``), or None."""
        from pipelines.promote import registry

        return registry.alias_version(self.get_conn(), self.model_name, alias)

    def status(self) -> dict[str, Any]:
        """Aliases, versions with their gate metrics and decisions, and the alias history."""
        from pipelines.promote import registry

        return registry.status(self.params(), self.settings())

    def render_status(self, report: dict[str, Any]) -> str:
        from pipelines.promote import registry

        return registry.render_status(report)

    def rollback(self, reason: str) -> dict[str, Any]:
        """Put ``previous_champion`` back as ``champion`` in one step, recording ``reason``."""
        from pipelines.promote import registry

        return registry.rollback(self.params(), self.settings(), reason)

    def promote(
        self,
        workspace: Path | None = None,
        *,
        force: bool = False,
        force_reason: str | None = None,
        trigger: str = "manual",
    ) -> dict[str, Any]:
        """Register the workspace's model and let the evaluation gate decide on ``champion``."""
        from pipelines.common.config import load_params
        from pipelines.promote import stage as promote

        settings = self.settings()
        workspace = workspace or settings.workspace
        params = load_params(workspace / "params.yaml")
        return promote.run(
            params, settings, workspace, force=force, force_reason=force_reason, trigger=trigger
        )
