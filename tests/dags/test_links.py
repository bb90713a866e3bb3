"""Operator extra links: which tasks show which links, and the URLs a real run stores for the UI.

Airflow 3 resolves a task's links on the worker as the task ends and keeps each URL in XCom
(``_link_<class>``), where the UI reads it; ``dag.test()`` runs that same task runner.
"""

from __future__ import annotations

import pendulum
import pytest

UI = "http://mlflow.test:5000"

EXPECTED_LINKS = {
    ("flywheel_training", "train"): ["MLflow run"],
    ("flywheel_training", "promote"): ["MLflow model version", "MLflow run"],
    ("flywheel_ingest", "validate"): ["GX Data Docs"],
    ("flywheel_drift", "check"): ["Evidently drift report", "MLflow run"],
}


@pytest.mark.parametrize(("dag_id", "task_id"), sorted(EXPECTED_LINKS))
def test_tasks_show_their_links_once_serialized(dagbag, dag_id, task_id):
    from airflow.serialization.serialized_objects import DagSerialization

    dag = DagSerialization.from_dict(DagSerialization.to_dict(dagbag.dags[dag_id]))
    assert dag.get_task(task_id).extra_links == EXPECTED_LINKS[(dag_id, task_id)]


def links_dag(values: dict):
    """A DAG whose tasks return what Flywheel's linked tasks return, one task per link set."""
    from airflow.sdk import DAG
    from flywheel_provider.links import (
        DataDocsLink,
        DriftReportLink,
        MlflowModelVersionLink,
        MlflowRunLink,
        linked_task,
    )

    with DAG(
        "links_probe",
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        default_args={"retries": 0},
    ) as dag:

        @linked_task(MlflowRunLink, MlflowModelVersionLink)
        def promote() -> dict:
            return values["promote"]

        @linked_task(DataDocsLink)
        def validate() -> dict:
            return values["validate"]

        @linked_task(DriftReportLink, MlflowRunLink)
        def check() -> dict:
            return values["check"]

        promote(), validate(), check()
    return dag


def serialize(dag) -> None:
    """Write a DAG built here to the metadata DB, as the dag-processor does for a DAG file."""
    import tempfile

    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder=tempfile.mkdtemp())
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)


def stored_links(run) -> dict[tuple[str, str], str | None]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(XComModel).filter(XComModel.run_id == run.run_id, XComModel.dag_id == run.dag_id)
        return {
            (x.task_id, x.key): XComModel.deserialize_value(x) for x in rows if x.key.startswith("_link_")
        }


def test_a_run_stores_each_link_built_from_what_its_task_returned(airflow_db, monkeypatch):
    monkeypatch.setenv("FLYWHEEL_MLFLOW_UI_URL", UI + "/")
    values = {
        "promote": {"mlflow_run_id": "run7", "model_name": "flywheel-model", "version": "7"},
        "validate": {
            "mlflow_run_id": "val1",
            "mlflow_experiment_id": "2",
            "docs_artifact": "data_docs/source=files/run=r1/index.html",
        },
        "check": {"mlflow_run_id": "drift1", "mlflow_experiment_id": "2", "report_artifact": None},
    }
    dag = links_dag(values)
    serialize(dag)
    run = dag.test()
    assert {ti.task_id: ti.state for ti in run.get_task_instances()} == dict.fromkeys(values, "success")
    assert stored_links(run) == {
        ("promote", "_link_MlflowRunLink"): f"{UI}/#/runs/run7",
        ("promote", "_link_MlflowModelVersionLink"): f"{UI}/#/models/flywheel-model/versions/7",
        ("validate", "_link_DataDocsLink"): (
            f"{UI}/#/experiments/2/runs/val1/artifactPath/data_docs/source%3Dfiles/run%3Dr1/index.html"
        ),
        ("check", "_link_DriftReportLink"): "",  # no HTML report (Evidently did not run): a disabled link
        ("check", "_link_MlflowRunLink"): f"{UI}/#/runs/drift1",
    }
