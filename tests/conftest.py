"""Shared fixtures. Airflow is pointed at a private home before anything imports it."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="flywheel-tests-"))

os.environ["AIRFLOW_HOME"] = str(_SESSION_HOME / "airflow")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY"] = "1"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
os.environ["GX_ANALYTICS_ENABLED"] = "false"
os.environ["MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING"] = "false"
os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
os.environ["DVC_NO_ANALYTICS"] = "1"
os.environ.setdefault("GIT_AUTHOR_NAME", "flywheel-tests")
os.environ.setdefault("GIT_AUTHOR_EMAIL", "tests@localhost")
os.environ.setdefault("GIT_COMMITTER_NAME", "flywheel-tests")
os.environ.setdefault("GIT_COMMITTER_EMAIL", "tests@localhost")
for key in ("FLYWHEEL_HOME", "FLYWHEEL_PARAMS", "FLYWHEEL_PROJECT", "MLFLOW_TRACKING_URI"):
    os.environ.pop(key, None)
for path in (ROOT / "plugins", ROOT / "dags", ROOT):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


@pytest.fixture
def repo_root() -> Path:
    return ROOT


@pytest.fixture
def demo_params():
    from pipelines.common.config import load_params

    return load_params(ROOT / "params.yaml")
