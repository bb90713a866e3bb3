"""What a training run logs: system metrics, the raw splits as datasets, lineage tags, the signature."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from pipelines import featurize
from pipelines.common.config import MlflowConfig, parse_params
from pipelines.common.settings import Settings
from pipelines.train import tracking
from tests.support.data import CHURN_SCHEMA, churn_events, churn_params, write_snapshot


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


# -- lineage -------------------------------------------------------------------------------------


def test_lineage_tags(tmp_path):
    params = churn_params()
    (tmp_path / "data/snapshot").mkdir(parents=True)
    (tmp_path / "data/snapshot/window.json").write_text(json.dumps({"rows": 3, "partitions": ["p1"]}))
    (tmp_path / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  featurize:\n    outs:\n"
        "    - path: data/features\n      md5: abc.dir\n    - path: data/split\n      md5: def.dir\n"
    )
    settings = Settings.from_env({"FLYWHEEL_HOME": str(tmp_path), "FLYWHEEL_PROJECT": str(tmp_path)})
    env = {"AIRFLOW_CTX_DAG_ID": "flywheel_training", "AIRFLOW_CTX_DAG_RUN_ID": "manual__1"}
    tags = tracking.lineage_tags(params, settings, tmp_path, env)

    assert tags == {
        "flywheel.stage": "train",
        "flywheel.schema": "churn",
        "flywheel.git_commit": "unknown",
        "airflow.dag_id": "flywheel_training",
        "airflow.run_id": "manual__1",
        "flywheel.data_window": '{"partitions":["p1"],"rows":3}',
        "flywheel.dvc.features_md5": "abc.dir",
        "flywheel.dvc.split_md5": "def.dir",
    }


def test_lineage_tags_without_optional_sources(tmp_path):
    settings = Settings.from_env({"FLYWHEEL_HOME": str(tmp_path), "FLYWHEEL_PROJECT": str(tmp_path)})
    tags = tracking.lineage_tags(churn_params(), settings, tmp_path, {})
    assert set(tags) == {"flywheel.stage", "flywheel.schema", "flywheel.git_commit"}


def test_a_long_window_is_shortened_to_fit_a_tag():
    window = {"rows": 5, "partitions": [f"validated/source=files/run={i:06d}" for i in range(1000)]}
    tag = tracking.window_tag(window, limit=200)
    assert json.loads(tag) == {"rows": 5, "partitions": "1000 items, see lineage/window.json"}


def test_the_signature_has_exact_types_but_any_for_an_optional_integer():
    from mlflow.types.schema import DataType

    schema = parse_params(
        {
            "schema": {
                **CHURN_SCHEMA,
                "columns": [*CHURN_SCHEMA["columns"], {"name": "visits", "type": "int", "min": 0}],
            }
        }
    ).schema
    inputs = {c.name: c for c in tracking.model_signature(schema).inputs.inputs}
    assert inputs["tenure"].type == DataType.double and inputs["tenure"].required
    assert inputs["plan"].type == DataType.string
    assert inputs["visits"].type == DataType.long
    assert str(inputs["support_calls"].type) == "Any" and not inputs["support_calls"].required


def _rows(**columns) -> pd.DataFrame:
    base = {
        "tenure": np.array([1.5, np.nan]),
        "plan": np.array(["basic", None], dtype=object),
        "support_calls": pd.array([3, None], dtype="Int64"),
    }
    return pd.DataFrame({**base, **columns})


@pytest.mark.parametrize(
    "rows",
    [
        _rows(),
        _rows(support_calls=np.array([3.0, np.nan])),  # an optional integer read with a missing value
        _rows(support_calls=np.array([3, 4])),  # ... and with none missing
        _rows(tenure=np.array([1, 2], dtype="int32")),  # small integers widen to double
        _rows().drop(columns="support_calls"),  # an optional column may be left out
    ],
    ids=["nullable-int", "float-with-nan", "int64", "int32-into-double", "optional-column-absent"],
)
def test_mlflow_accepts_the_raw_forms_the_lake_and_requests_hold(rows):
    from mlflow.models import validate_schema

    validate_schema(rows, tracking.model_signature(churn_params().schema).inputs)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (_rows(tenure=np.array(["a", "b"], dtype=object)), "column tenure from type object"),
        (_rows(tenure=np.array([1, 2])), "column tenure. Can not safely convert int64"),
        (_rows(plan=np.array([1, 2])), "column plan"),
        (_rows().drop(columns="tenure"), r"missing inputs \['tenure'\]"),
    ],
    ids=["text-for-a-float", "int64-for-a-float", "a-number-for-a-category", "a-required-column-missing"],
)
def test_mlflow_refuses_a_wrong_type_naming_the_column(rows, message):
    from mlflow.exceptions import MlflowException
    from mlflow.models import validate_schema

    with pytest.raises(MlflowException, match=message):
        validate_schema(rows, tracking.model_signature(churn_params().schema).inputs)


@pytest.mark.parametrize(
    ("baked", "expected"),
    [("0123abcd", "0123abcd"), ("", "unknown"), ("unknown", "unknown")],
    ids=["image-build-argument", "unset", "the-dockerfile-default"],
)
def test_an_image_without_git_history_reports_its_baked_commit(tmp_path, monkeypatch, baked, expected):
    monkeypatch.setenv("FLYWHEEL_GIT_COMMIT", baked)
    assert tracking.git_commit(tmp_path) == expected  # tmp_path: no .git, like /opt/flywheel in the image


def test_a_checkout_reports_its_own_commit_over_a_baked_one(monkeypatch):
    import subprocess

    from tests.support.install import ROOT

    monkeypatch.setenv("FLYWHEEL_GIT_COMMIT", "stale")
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert tracking.git_commit(ROOT) == head.stdout.strip() != "stale"
