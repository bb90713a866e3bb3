"""MlflowRegistryOperator: one registry action (``status`` or ``rollback``) as a task."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from flywheel_provider.hooks.mlflow_registry import MlflowRegistryHook

ACTIONS = ("status", "rollback")


class MlflowRegistryOperator(BaseOperator):
    """Run ``action`` on the registered model through :class:`MlflowRegistryHook`.

    ``status`` logs the aliases, versions and alias history and returns them;
    ``rollback`` needs ``reason`` and puts ``previous_champion`` back as ``champion``.
    A request that cannot succeed (no reason, nothing to roll back to) fails without
    retries; an unreachable tracking server fails normally, so the task retries.
    Both fields are templated: ``action="{{ params.action }}"`` wires a trigger form.
    """

    template_fields: Sequence[str] = ("action", "reason")
    ui_color = "#0194e2"

    def __init__(
        self,
        *,
        action: str,
        reason: str = "",
        mlflow_conn_id: str = MlflowRegistryHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.action = action
        self.reason = reason
        self.mlflow_conn_id = mlflow_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from pipelines.promote import registry

        if self.action not in ACTIONS:
            raise AirflowFailException(f"action {self.action!r} is not one of {', '.join(ACTIONS)}")
        hook = MlflowRegistryHook(self.mlflow_conn_id)
        if self.action == "status":
            report = hook.status()
            self.log.info("%s", hook.render_status(report))
            return report
        try:
            return hook.rollback(self.reason)
        except registry.RegistryError as exc:  # a refused rollback; an unreachable server is retried
            raise AirflowFailException(str(exc)) from None
