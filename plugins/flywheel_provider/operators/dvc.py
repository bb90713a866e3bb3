"""DvcReproOperator: run one stage of the workspace's dvc.yaml and report whether it ran."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from flywheel_provider.hooks.flywheel import FlywheelHook


class DvcReproOperator(BaseOperator):
    """``dvc repro --single-item <stage>`` in Flywheel's DVC workspace.

    Returns ``{"stage", "outcome": "ran" | "skipped" | "restored", "seconds"}``: DVC
    skips a stage whose deps, params and command did not change. Run it in a
    one-slot pool (``dvc``) or under ``max_active_runs=1``: two ``dvc repro``
    in one workspace fail on DVC's lock.
    """

    template_fields: Sequence[str] = ("stage",)
    ui_color = "#945dd6"

    def __init__(self, *, stage: str, mlflow_conn_id: str = FlywheelHook.default_conn_name, **kwargs: Any):
        super().__init__(**kwargs)
        self.stage = stage
        self.mlflow_conn_id = mlflow_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        from pipelines.workspace import repo as workspace

        settings = FlywheelHook(self.mlflow_conn_id).settings()
        # With a shared workspace remote (the stack, compose): fetched first, pushed after.
        with workspace.attached(settings, context["run_id"], f"dvc repro {self.stage}"):
            result = workspace.repro(settings, self.stage)
        self.log.info("DVC stage %s: %s in %.1f s", result.stage, result.outcome, result.seconds)
        return {"stage": result.stage, "outcome": result.outcome, "seconds": round(result.seconds, 3)}
