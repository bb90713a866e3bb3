"""Flywheel's DAG policy, applied to every file in dags/.

A DAG someone adds is checked without editing this test.

Each check fails with what to change. The rules (see docs/adding-a-task.md):

- tags (``flywheel`` and an area), Markdown docs (``doc_md=__doc__``), an owner, ``catchup=False``;
- ``retries >= 2`` and the failure callback on every task (through ``default_args``);
- a description on every trigger-form field (``Param(..., description=...)``);
- one run at a time (``max_active_runs=1``: the runs share the DVC workspace and the lake's state);
- parsing is cheap: no heavy library imported at module level, and under a second per file;
- ``pipelines/`` never imports ``airflow``.

The last tests feed deliberately broken DAGs to the same checks, so the policy cannot pass vacuously.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.install import ROOT

DAG_FILES = sorted(p for p in (ROOT / "dags").glob("*.py") if not p.name.startswith("_"))
HEAVY = ("torch", "mlflow", "great_expectations", "evidently", "dvc", "sklearn", "kafka", "pandas", "pyarrow")
MAX_PARSE_SECONDS = 1.0


def load_dags(path: Path) -> tuple[dict, dict]:
    """The DAGs of one file and its import errors, parsed like the dag-processor does."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(path))
    return bag.dags, bag.import_errors


def policy_violations(dag) -> list[str]:
    """Every policy rule ``dag`` breaks, each with how to fix it."""
    from flywheel_provider.callbacks import FailureAlert

    problems: list[str] = []
    where = dag.dag_id
    if not dag.tags or "flywheel" not in dag.tags or len(dag.tags) < 2:
        problems.append(
            f"{where}: tags={sorted(dag.tags or [])}; add tags=['flywheel', '<area>'] to @dag(...)"
        )
    if not dag.doc_md or len(dag.doc_md.strip()) < 100:
        problems.append(
            f"{where}: no Markdown docs; write a module docstring (what runs, when, the form's fields) "
            "and pass doc_md=__doc__ to @dag(...)"
        )
    if dag.catchup:
        problems.append(f"{where}: catchup=True; set catchup=False and backfill explicitly (make backfill)")
    for task in dag.tasks:
        name = f"{where}.{task.task_id}"
        if task.retries < 2:
            problems.append(
                f"{name}: retries={task.retries}; set default_args={{'retries': 2, ...}} in the DAG "
                "(a task that must not retry raises AirflowFailException instead)"
            )
        if not task.owner or task.owner == "airflow":
            problems.append(f"{name}: owner={task.owner!r}; set default_args={{'owner': 'flywheel', ...}}")
        callbacks = task.on_failure_callback or []
        callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
        if not any(isinstance(c, FailureAlert) for c in callbacks):
            problems.append(
                f"{name}: no failure alert; add 'on_failure_callback': notify_failure "
                "(from flywheel_provider.callbacks import notify_failure) to default_args"
            )
    for key in dag.params.keys():
        if not getattr(dag.params.get_param(key), "description", None):
            problems.append(
                f"{where}: form field {key!r} has no description; use Param(..., description='...')"
            )
    if dag.max_active_runs != 1:
        problems.append(
            f"{where}: max_active_runs={dag.max_active_runs}; set max_active_runs=1 (runs share the "
            "DVC workspace and the lake's state manifests: one writer at a time)"
        )
    return problems


def parse_report(path: Path, env: dict[str, str] | None = None) -> dict:
    """Import a DAG file in a fresh interpreter (Airflow's SDK already loaded, as in the dag-processor);
    return the seconds the import took and the heavy modules it pulled in."""
    code = textwrap.dedent(f"""
        import importlib.util, json, sys, time
        import airflow.sdk  # the framework is loaded in the dag-processor already; the file's own cost counts
        before = set(sys.modules)
        start = time.perf_counter()
        spec = importlib.util.spec_from_file_location("dag_file_under_test", {str(path)!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        seconds = time.perf_counter() - start
        heavy = sorted(m for m in set(sys.modules) - before if m.split(".")[0] in {HEAVY!r})
        print(json.dumps({{"seconds": seconds, "heavy": heavy}}))
    """)
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT)]),
        **(env or {}),
    }
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=180,
        env=environment,
        cwd=path.parent,
    )
    assert proc.returncode == 0, f"{path.name} failed to import:\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def parse_violations(path: Path, report: dict) -> list[str]:
    problems = []
    if report["heavy"]:
        problems.append(
            f"{path.name} imports {report['heavy'][:5]} when parsed; move the import inside the task "
            "callable (or into plugins/ code that runs in the task)"
        )
    if report["seconds"] > MAX_PARSE_SECONDS:
        problems.append(
            f"{path.name} takes {report['seconds']:.2f} s to parse (limit {MAX_PARSE_SECONDS} s); no "
            "network, Variable.get, file scans or heavy imports at module level"
        )
    return problems


def airflow_imports(folder: Path) -> list[str]:
    """``path:line`` of every ``import airflow`` / ``from airflow ...`` under ``folder``."""
    found = []
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and node.level == 0
                else []
            )
            if any(n == "airflow" or n.startswith("airflow.") for n in names):
                found.append(f"{path.relative_to(folder.parent)}:{node.lineno}")
    return found


# -- the project's DAGs ------------------------------------------------------------------------------


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=[p.name for p in DAG_FILES])
def test_dag_file_follows_the_policy(dag_file):
    dags, errors = load_dags(dag_file)
    assert not errors, f"{dag_file.name} does not import:\n" + "\n".join(map(str, errors.values()))
    assert dags, f"{dag_file.name} defines no DAG; call the @dag function at the end of the file"
    problems = [p for dag in dags.values() for p in policy_violations(dag)]
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=[p.name for p in DAG_FILES])
def test_dag_file_parses_fast_without_heavy_imports(dag_file):
    problems = parse_violations(dag_file, parse_report(dag_file))
    assert problems == [], "\n".join(problems)


def test_pipelines_never_import_airflow():
    offenders = airflow_imports(ROOT / "pipelines")
    assert offenders == [], (
        f"pipelines/ must not import airflow: {offenders}; keep the logic Airflow-free "
        "and put the Airflow wiring in dags/ or plugins/flywheel_provider/"
    )


# -- the policy catches the usual mistakes -------------------------------------------------------------


def test_policy_names_each_mistake_and_its_fix():
    import pendulum
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG, Param

    with DAG(
        "careless",
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1),
        catchup=True,
        max_active_runs=4,
        params={"window": Param(3, type="integer")},
    ) as dag:
        EmptyOperator(task_id="write", retries=0)
    problems = "\n".join(policy_violations(dag))
    for expected in (
        "add tags=['flywheel', '<area>']",
        "doc_md=__doc__",
        "set catchup=False",
        "careless.write: retries=0",
        "'on_failure_callback': notify_failure",
        "form field 'window' has no description",
        "set max_active_runs=1",
    ):
        assert expected in problems, f"{expected!r} not reported in:\n{problems}"


def test_slow_or_heavy_dag_files_are_caught(tmp_path):
    slow = tmp_path / "slow_dag.py"
    slow.write_text("import time\nimport kafka  # heavy for a DAG file\n\ntime.sleep(1.2)\n")
    problems = "\n".join(parse_violations(slow, parse_report(slow)))
    assert "slow_dag.py imports ['kafka'" in problems and "move the import inside the task" in problems
    assert "to parse (limit 1.0 s)" in problems


def test_airflow_import_under_pipelines_is_caught(tmp_path):
    package = tmp_path / "pipelines"
    package.mkdir()
    (package / "ok.py").write_text("import json\n")
    (package / "bad.py").write_text("def f():\n    from airflow.sdk import Variable\n    return Variable\n")
    assert airflow_imports(package) == ["pipelines/bad.py:2"]
