"""Every DAG imports cleanly, follows Flywheel's policy, and has the expected shape."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((ROOT / "dags").glob("*.py"))
EXPECTED = {
    "flywheel_ingest": {"ingest": [], "validate": ["ingest"]},
    "flywheel_drift": {"check": [], "trigger_retrain": ["check"]},
    "flywheel_registry": {"operate": []},
    "flywheel_training": {
        "prepare": [], "snapshot": ["prepare"], "featurize": ["snapshot"], "train": ["featurize"],
        "evaluate": ["train"], "promote": ["evaluate", "prepare"], "record": ["featurize", "evaluate",
                                                                               "prepare", "promote",
                                                                               "snapshot", "train"],
    },
}
HEAVY = ("torch", "mlflow", "great_expectations", "evidently", "dvc", "sklearn", "kafka")


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}, "DAG files failed to import:\n" + "\n".join(
        f"{path}: {err}" for path, err in dagbag.import_errors.items())


def test_expected_dags(dagbag):
    assert set(EXPECTED) <= set(dagbag.dag_ids)


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_policy(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert dag.tags and "flywheel" in dag.tags, f"{dag_id}: add tags=['flywheel', ...] to @dag"
    assert dag.doc_md and len(dag.doc_md) > 100, f"{dag_id}: document the DAG with doc_md=__doc__"
    assert dag.catchup is False, f"{dag_id}: set catchup=False (backfill explicitly instead)"
    assert dag.max_active_runs == 1, f"{dag_id}: one run at a time (DVC workspace, manifests)"
    for t in dag.tasks:
        assert t.retries >= 2, f"{dag_id}.{t.task_id}: retries={t.retries}; set default_args retries >= 2"
        assert t.owner == "flywheel", f"{dag_id}.{t.task_id}: set default_args owner"


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
    assert {"window_days", "epochs", "force_promote", "force_reason"} <= set(params.keys())
    for name in ("window_days", "epochs", "force_promote", "force_reason"):
        assert params.get_param(name).description, f"form field {name} needs a description"


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=[p.name for p in DAG_FILES])
def test_dag_file_imports_nothing_heavy(dag_file):
    code = (
        "import importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('dagfile', {str(dag_file)!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ,
                               "PYTHONPATH": f"{ROOT / 'plugins'}:{ROOT}"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    heavy = json.loads(proc.stdout.strip().splitlines()[-1])
    assert heavy == [], f"{dag_file.name} imports {heavy} at parse time; import inside the task callable"


def test_pipelines_never_import_airflow():
    offenders = [
        f"{path.relative_to(ROOT)}:{n}" for path in (ROOT / "pipelines").rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if line.lstrip().startswith(("import airflow", "from airflow"))
    ]
    assert offenders == [], f"pipelines/ must not import airflow (move it to dags/ or plugins/): {offenders}"
