"""MLflow tracking helpers: the system-metrics switch and the raw splits as MLflow datasets."""

from __future__ import annotations

import hashlib

import pytest

from pipelines.common.config import MlflowConfig
from pipelines.featurize import preprocess as featurize
from pipelines.train import tracking
from tests.support.data import churn_events, churn_params, write_snapshot


@pytest.mark.parametrize(
    ("param", "env", "expected"),
    [
        (True, {}, True),
        (False, {}, False),
        (True, {"MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING": "false"}, False),
        (False, {"MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING": "True"}, True),
        (True, {"MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING": ""}, True),
        (False, {"MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING": "0"}, False),
    ],
    ids=["param-on", "param-off", "env-off-wins", "env-on-wins", "empty-env", "env-zero"],
)
def test_system_metrics_enabled(param, env, expected):
    assert tracking.system_metrics_enabled(MlflowConfig(system_metrics=param), env) is expected


def test_dataset_schema_follows_the_project_schema():
    schema = tracking.dataset_schema(churn_params().schema)
    assert [(c.name, c.type.name, c.required) for c in schema.inputs] == [
        ("customer_id", "string", True),
        ("observed_at", "datetime", True),
        ("tenure", "double", True),
        ("plan", "string", True),
        ("support_calls", "long", False),
        ("churned", "long", True),
    ]


@pytest.fixture
def workspace(tmp_path):
    params = churn_params()
    write_snapshot(tmp_path, churn_events(600))
    featurize.run(params, None, tmp_path)
    return tmp_path


@pytest.mark.parametrize("with_lock", [True, False], ids=["dvc-lock", "no-lock"])
def test_split_dataset_names_the_dvc_path_and_hashes(workspace, with_lock):
    if with_lock:
        (workspace / "dvc.lock").write_text(
            "schema: '2.0'\nstages:\n  featurize:\n    outs:\n    - path: data/split\n      md5: 0123.dir\n"
        )
    dataset, tags = tracking.split_dataset(workspace, churn_params().schema, "valid")
    md5 = hashlib.md5((workspace / "data/split/valid.parquet").read_bytes()).hexdigest()
    assert dataset.digest == md5 and dataset.name == "churn-valid"
    assert dataset.source.to_dict() == {"uri": "data/split/valid.parquet"}
    assert dataset.profile == {"num_rows": 90, "num_elements": 90 * 6}
    expected = {"dvc.path": "data/split/valid.parquet", "dvc.md5": md5}
    assert tags == ({**expected, "dvc.lock.data/split": "0123.dir"} if with_lock else expected)
