"""The architecture guard on Flywheel's own tree, and on small trees that break each rule."""

from __future__ import annotations

import inspect
import pkgutil
from pathlib import Path

import pytest

import pipelines
from pipelines.common.errors import FlywheelError
from tests.support.architecture import check
from tests.support.install import ROOT


def test_pipelines_keeps_its_import_rules():
    problems = check(ROOT)
    assert problems == [], "\n".join(problems)


def test_the_top_level_holds_only_packages_and_the_cli():
    top = sorted(p.name for p in (ROOT / "pipelines").iterdir() if p.name != "__pycache__")
    files = [name for name in top if not (ROOT / "pipelines" / name).is_dir()]
    assert files == ["__init__.py", "__main__.py", "cli.py"]
    assert all((ROOT / "pipelines" / name / "__init__.py").exists() for name in top if name not in files)


def test_every_flywheel_error_has_the_common_base():
    """The CLI and the DAG tasks catch FlywheelError: every error class Flywheel defines derives from it."""
    offenders = []
    for info in pkgutil.walk_packages(pipelines.__path__, "pipelines."):
        if info.name == "pipelines.__main__":  # runs the CLI
            continue
        module = __import__(info.name, fromlist=["_"])
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == info.name:
                if not issubclass(obj, FlywheelError):
                    offenders.append(f"{info.name}.{name}")
    assert offenders == [], f"{offenders}: derive them from pipelines.common.errors.FlywheelError"


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / "pipelines" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


LAZY_API = '_API = {"run": "stage", "metrics": "metrics"}\n__all__ = ["metrics", "run"]\n'
BROKEN = [
    pytest.param(
        {
            "a/__init__.py": "",
            "a/x.py": "from pipelines.b.y import f\n",
            "b/__init__.py": "",
            "b/y.py": "def f(): from pipelines.a.x import g\n",
        },
        "import cycle: pipelines.a.x -> pipelines.b.y -> pipelines.a.x",
        id="cycle-through-a-function",
    ),
    pytest.param(
        {
            "common/__init__.py": "",
            "common/io.py": "from pipelines.train import run\n",
            "train/__init__.py": LAZY_API,
            "train/stage.py": "def run(): pass\n",
        },
        "common/io.py:1 imports pipelines.train.run: common imports no other package",
        id="common-imports-a-stage",
    ),
    pytest.param(
        {
            "drift/__init__.py": "",
            "drift/stage.py": "from pipelines.featurize.window import Window\n",
            "featurize/__init__.py": LAZY_API,
            "featurize/window.py": "class Window: pass\n",
        },
        "drift/stage.py:1 imports pipelines.featurize.window.Window, an internal of pipelines.featurize",
        id="another-stage's-internals",
    ),
    pytest.param(
        {
            "train/__init__.py": "",
            "train/stage.py": "from pipelines.demo import generator\n",
            "demo/__init__.py": "",
            "demo/generator.py": "",
        },
        "demo holds the tools for trying or running Flywheel",
        id="a-stage-imports-demo",
    ),
    pytest.param(
        {
            "drift/__init__.py": "",
            "drift/stage.py": "from pipelines.stack import up\n",
            "stack/__init__.py": LAZY_API,
            "stack/stage.py": "def up(): pass\n",
        },
        "stack holds the tools for trying or running Flywheel",
        id="a-stage-imports-the-stack-tooling",
    ),
    pytest.param(
        {"train/__init__.py": "", "train/stage.py": "def f():\n    from airflow.sdk import Variable\n"},
        "train/stage.py:2 imports airflow.sdk.Variable: pipelines/ must not import airflow",
        id="airflow",
    ),
]


@pytest.mark.parametrize(("files", "expected"), BROKEN)
def test_the_guard_names_each_broken_rule(tmp_path, files, expected):
    problems = check(_tree(tmp_path, files))
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(
    ("rel", "text", "expected"),
    [
        (
            "plugins/flywheel_provider/tasks/training.py",
            "def f():\n    from pipelines.demo.airflow_runner.rest import AirflowApi\n",
            "plugins/flywheel_provider/tasks/training.py:2 imports pipelines.demo.airflow_runner.rest."
            "AirflowApi: the Airflow integration is product and demo holds the tools",
        ),
        (
            "dags/flywheel_x.py",
            "from pipelines import stack\n",
            "dags/flywheel_x.py:1 imports pipelines.stack: the Airflow integration is product and stack",
        ),
    ],
    ids=["a-task-imports-demo", "a-dag-imports-stack"],
)
def test_the_airflow_integration_never_imports_the_tools(tmp_path, rel, text, expected):
    path = tmp_path / rel
    path.parent.mkdir(parents=True)
    path.write_text(text)
    problems = check(tmp_path)
    assert any(expected in p for p in problems), problems


def test_public_names_and_public_modules_pass(tmp_path):
    root = _tree(
        tmp_path,
        {
            "evaluate/__init__.py": LAZY_API,
            "evaluate/stage.py": "from pipelines.train import run\n",
            "evaluate/metrics.py": "def f(): pass\n",
            "train/__init__.py": LAZY_API,
            "train/stage.py": "from pipelines.evaluate.metrics import f\n",
            "train/metrics.py": "",
        },
    )
    assert check(root) == []
