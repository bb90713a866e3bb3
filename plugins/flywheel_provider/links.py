"""Operator extra links: buttons on a task in the Airflow UI that open what the task produced.

Airflow 3 resolves an operator's links on the worker when the task ends (``get_link`` receives the
running task instance) and keeps each URL in XCom (``_link_<class>``), which the UI reads. Every link
here is built from the task's own return value (``mlflow_run_id``, ``mlflow_experiment_id``,
``model_name``, ``version``, ``docs_artifact``, ``report_artifact``) and the MLflow UI's base URL
(:meth:`FlywheelHook.mlflow_ui_url`); a missing part gives an empty link, shown disabled.

``linked_task(*links, ...)`` is ``@task`` with links: the DAG files decorate a task body with it.
"""

from __future__ import annotations

from functools import cache
from typing import Any, ClassVar

from airflow.sdk import BaseOperatorLink

from flywheel_provider.hooks.flywheel import FlywheelHook


def returned(ti: Any) -> dict[str, Any]:
    """The task instance's own return value, when it is a dict (else empty)."""
    value = ti.xcom_pull(task_ids=ti.task_id, key="return_value")
    return value if isinstance(value, dict) else {}


class FlywheelLink(BaseOperatorLink):
    """A link built from the task's return value and the MLflow UI's base URL."""

    name: ClassVar[str] = "Flywheel"  # type: ignore[misc]

    def url(self, base: str | None, value: dict[str, Any]) -> str | None:
        raise NotImplementedError

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        value = returned(ti_key)
        if not value:
            return ""
        return self.url(FlywheelHook().mlflow_ui_url(), value) or ""


class MlflowRunLink(FlywheelLink):
    """The MLflow run that trained (or was promoted from) this task's model."""

    name = "MLflow run"

    def url(self, base: str | None, value: dict[str, Any]) -> str | None:
        from pipelines.common.ui_links import mlflow_run_url

        return mlflow_run_url(base, value.get("mlflow_run_id"))


class MlflowModelVersionLink(FlywheelLink):
    """The registered model version the task registered or judged."""

    name = "MLflow model version"

    def url(self, base: str | None, value: dict[str, Any]) -> str | None:
        from pipelines.common.ui_links import mlflow_model_version_url

        return mlflow_model_version_url(base, value.get("model_name"), value.get("version"))


class DataDocsLink(FlywheelLink):
    """The Great Expectations Data Docs of the batches the task validated, in MLflow's artifact view."""

    name = "GX Data Docs"

    def url(self, base: str | None, value: dict[str, Any]) -> str | None:
        from pipelines.common.ui_links import mlflow_artifact_url

        return mlflow_artifact_url(
            base, value.get("mlflow_experiment_id"), value.get("mlflow_run_id"), value.get("docs_artifact")
        )


class DriftReportLink(FlywheelLink):
    """The Evidently drift report of the check, in MLflow's artifact view."""

    name = "Evidently drift report"

    def url(self, base: str | None, value: dict[str, Any]) -> str | None:
        from pipelines.common.ui_links import mlflow_artifact_url

        return mlflow_artifact_url(
            base, value.get("mlflow_experiment_id"), value.get("mlflow_run_id"), value.get("report_artifact")
        )


@cache
def linked_operator(links: tuple[type[FlywheelLink], ...]) -> type:
    """The ``@task`` operator class with these links (one class per set: equal links share it)."""
    from airflow.providers.standard.decorators.python import _PythonDecoratedOperator

    name = "Linked" + "".join(link.__name__.removesuffix("Link") for link in links) + "Operator"
    return type(
        name,
        (_PythonDecoratedOperator,),
        {"operator_extra_links": tuple(link() for link in links), "__module__": __name__},
    )


def linked_task(*links: type[FlywheelLink], **kwargs: Any) -> Any:
    """``@task(**kwargs)`` whose task shows ``links`` in the UI."""
    from airflow.sdk.bases.decorator import task_decorator_factory

    return task_decorator_factory(decorated_operator_class=linked_operator(tuple(links)), **kwargs)
