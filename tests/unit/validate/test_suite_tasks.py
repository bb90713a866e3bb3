"""The validation gate per task: a multiclass target must be one of the classes, a regression target
within its range; a batch that breaks them fails, naming the expectation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.common.config import parse_params
from pipelines.validate.gate import validate_frame
from tests.support.data import SENSOR, VALIDATE, sensor_frame


def params_for(task: str, **schema: object):
    return parse_params(
        {
            "schema": {**SENSOR, "task": task, **schema},
            "validate": VALIDATE,
            "promote": {"metric": "rmse" if task == "regression" else "macro_f1"},
            "drift": {"performance_metric": "rmse" if task == "regression" else "macro_f1"},
        }
    )


def failed(outcome) -> set[str]:
    return {f["expectation"] for f in outcome.failures}


def test_a_regression_target_out_of_its_range_fails():
    params = params_for("regression", target_min=0, target_max=10)
    frame = sensor_frame().assign(alarm=np.linspace(0, 9, 200))
    assert validate_frame(frame, params.schema, params.validation).success
    frame.loc[:20, "alarm"] = 50.0  # 10% out of range; mostly is 0.99
    assert failed(validate_frame(frame, params.schema, params.validation)) == {
        "expect_column_values_to_be_between"
    }


@pytest.mark.parametrize(("labels", "ok"), [(["x", "y", "z"], True), (["x", "y", "other"], False)])
def test_a_multiclass_target_must_be_one_of_the_classes(labels, ok):
    params = params_for("multiclass", classes=["x", "y", "z"])
    frame = sensor_frame().assign(alarm=pd.Series(labels * 70).iloc[:200].to_numpy(dtype=object))
    outcome = validate_frame(frame, params.schema, params.validation)
    assert outcome.success is ok
    if not ok:
        assert failed(outcome) == {"expect_column_values_to_be_in_set"}
