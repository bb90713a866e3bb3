"""Every DAG imports cleanly and has the expected shape. The policy every DAG file follows: test_policy.py."""

from __future__ import annotations

import pytest

EXPECTED = {
    "flywheel_ingest": {"ingest": [], "validate": ["ingest"]},
    "flywheel_drift": {"check": [], "trigger_retrain": ["check"]},
    "flywheel_registry": {"operate": []},
    "flywheel_scoring": {"score": [], "measure": ["score"]},
    "flywheel_training": {
        "prepare": [],
        "snapshot": ["prepare"],
        "featurize": ["snapshot"],
        "train": ["featurize"],
        "evaluate": ["train"],
        "promote": ["evaluate", "prepare"],
        "record": ["featurize", "evaluate", "prepare", "promote", "snapshot", "train"],
    },
}


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}, "DAG files failed to import:\n" + "\n".join(
        f"{path}: {err}" for path, err in dagbag.import_errors.items()
    )


def test_expected_dags(dagbag):
    assert set(EXPECTED) <= set(dagbag.dag_ids)


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_structure(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert set(dag.task_dict) == set(EXPECTED[dag_id])
    for task_id, upstream in EXPECTED[dag_id].items():
        assert sorted(dag.get_task(task_id).upstream_task_ids) == sorted(upstream), task_id


def test_train_runs_in_gpu_pool_and_dvc_stages_in_one_slot_pool(dagbag):
    dag = dagbag.dags["flywheel_training"]
    assert dag.get_task("train").pool == "gpu"
    for task_id in ("snapshot", "featurize", "evaluate", "promote", "record"):
        assert dag.get_task(task_id).pool == "dvc"


def test_training_form_fields(dagbag):
    params = dagbag.dags["flywheel_training"].params
    fields = ("window_days", "epochs", "learning_rate", "force_promote", "force_reason")
    assert set(fields) <= set(params.keys())
    for name in fields:
        assert params.get_param(name).description, f"form field {name} needs a description"
