"""DvcReproOperator: run one stage of the workspace's dvc.yaml and report whether it ran."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from flywheel_provider.hooks.flywheel import FlywheelHook
from flywheel_provider.links import MlflowRunLink


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
        from flywheel_provider.timeouts import task_timeout

        # Its limit from params (timeouts.tasks.<task_id>, else the default) unless the DAG gives one.
        kwargs.setdefault("execution_timeout", task_timeout(kwargs["task_id"]))
        super().__init__(**kwargs)
        self.stage = stage
        self.mlflow_conn_id = mlflow_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowTaskTimeout

        from flywheel_provider.timeouts import timeout_message
        from pipelines.workspace import repo as workspace

        settings = FlywheelHook(self.mlflow_conn_id).settings()
        # With a shared workspace remote (the stack, compose): fetched first, pushed after.
        with workspace.attached(settings, context["run_id"], f"dvc repro {self.stage}"):
            try:
                result = workspace.repro(settings, self.stage)
            except AirflowTaskTimeout as exc:  # dvc repro and its stage were stopped with their process group
                raise AirflowTaskTimeout(timeout_message(self.stage, self.execution_timeout)) from exc
        self.log.info("DVC stage %s: %s in %.1f s", result.stage, result.outcome, result.seconds)
        return {"stage": result.stage, "outcome": result.outcome, "seconds": round(result.seconds, 3)}


class DvcTrainOperator(DvcReproOperator):
    """:class:`DvcReproOperator` for the ``train`` stage: also returns the model's ``mlflow_run_id``
    (from the workspace's ``models/model/model.json``), and links to that MLflow run in the UI."""

    operator_extra_links = (MlflowRunLink(),)

    def execute(self, context: Any) -> dict[str, Any]:
        import json

        from pipelines.workspace.paths import MODEL_JSON

        result = super().execute(context)
        meta_path = FlywheelHook(self.mlflow_conn_id).settings().workspace / MODEL_JSON
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        return {**result, "mlflow_run_id": meta.get("mlflow_run_id")}
