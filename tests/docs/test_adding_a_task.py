"""docs/adding-a-task.md, followed literally in a copy of the project.

Every code block the guide marks (``<!-- doc-test: ... -->``, invisible when rendered) is applied to a
copy of the project the way the guide says (create a file, insert after a line, append, replace a
block), and every command block runs there with the project's interpreter and ``flywheel`` on PATH.
A guide that drifts from the code fails here with the step that no longer applies.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.install import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.integration]

GUIDE = ROOT / "docs" / "adding-a-task.md"
# What the guide touches, and what its commands need; a path the project does not have (yet) is skipped.
COPIED = (
    "pipelines",
    "dags",
    "plugins",
    "dvc.yaml",
    "params.yaml",
    "pyproject.toml",
    "conftest.py",
    "tests/dags",
    "tests/support",
)
STEP = re.compile(
    r"<!-- doc-test: (?P<action>[\w-]+)(?: (?P<args>[^\n]*?))? -->\n```(?P<lang>\w*)\n(?P<body>.*?)```", re.S
)


@dataclass
class Step:
    action: str
    args: list[str]
    body: str

    def __str__(self) -> str:
        return f"{self.action} {' | '.join(self.args)}".strip()


def steps(text: str) -> list[Step]:
    return [
        Step(m["action"], [a.strip() for a in (m["args"] or "").split(" | ")] if m["args"] else [], m["body"])
        for m in STEP.finditer(text)
    ]


def copy_project(dest: Path) -> None:
    """The parts of the project the guide changes and runs.

    With them, every conftest and package marker of tests/.
    """
    markers = [
        p.relative_to(ROOT)
        for p in (ROOT / "tests").rglob("*.py")
        if p.name in ("conftest.py", "__init__.py")
    ]
    for rel in [*COPIED, *map(str, markers)]:
        src, target = ROOT / rel, dest / rel
        if not src.exists() or target.exists():
            continue
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
    (dest / "tests" / "unit").mkdir(parents=True, exist_ok=True)


def apply(step: Step, project: Path) -> None:
    """Make the change a code block describes; fail naming the step when it no longer applies."""
    path = project / step.args[0]
    if step.action == "create":
        assert not path.exists(), f"{step}: {step.args[0]} exists already; the guide's example must be new"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(step.body)
        return
    lines = path.read_text().splitlines(keepends=True)
    if step.action == "append":
        path.write_text("".join(lines) + step.body)
        return
    start = next((i for i, line in enumerate(lines) if step.args[1] in line), None)
    assert start is not None, f"{step}: no line with {step.args[1]!r} in {step.args[0]}; update the guide"
    if step.action == "insert-after":
        lines[start + 1 : start + 1] = [step.body]
    elif step.action == "replace":
        end = next((i for i in range(start, len(lines)) if lines[i].strip() == step.args[2]), None)
        assert end is not None, (
            f"{step}: no closing {step.args[2]!r} after {step.args[1]!r}; update the guide"
        )
        lines[start : end + 1] = [step.body]
    else:
        pytest.fail(f"unknown doc-test action {step.action!r}")
    path.write_text("".join(lines))


def environment(project: Path) -> dict[str, str]:
    """A shell as the guide assumes it: the project's venv active, the project (here: the copy) installed."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("FLYWHEEL_", "AIRFLOW", "MLFLOW_TRACKING"))
    }
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = str(project)  # the copy's pipelines/ wins over the editable install of the real one
    env["GX_ANALYTICS_ENABLED"] = "false"
    env["MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING"] = "false"
    return env


def test_guide_marks_the_whole_path():
    actions = [(s.action, s.args[0] if s.args else "") for s in steps(GUIDE.read_text())]
    for expected in [
        ("insert-after", "pipelines/workspace/paths.py"),
        ("create", "pipelines/profile/stage.py"),
        ("create", "pipelines/profile/__init__.py"),
        ("create", "tests/unit/profile/test_profile.py"),
        ("insert-after", "pipelines/cli.py"),
        ("append", "dvc.yaml"),
        ("insert-after", "dags/flywheel_training.py"),
        ("replace", "tests/dags/test_dag_integrity.py"),
        ("run", ""),
    ]:
        assert expected in actions, f"the guide no longer covers {expected}"


def test_following_the_guide_literally_works(tmp_path):
    project = tmp_path / "project"
    copy_project(project)
    env = environment(project)
    for step in steps(GUIDE.read_text()):
        if step.action != "run":
            apply(step, project)
            continue
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", step.body],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, (
            f"this command block of the guide failed (exit {proc.returncode}):\n"
            f"{step.body}\n--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n"
            f"{proc.stderr[-4000:]}"
        )
