"""The metrics of multiclass and regression tasks: equal to scikit-learn's, resampled exactly, oriented."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)

from pipelines.evaluate.metrics import (
    class_codes,
    direction,
    metric,
    multiclass_metrics,
    orient,
    regression_metrics,
    resampled_metric,
    residual_points,
)

RNG = np.random.default_rng(3)
Y_CLASS = RNG.integers(0, 4, 300)
PROBA = RNG.dirichlet(np.ones(4), 300)
Y_NUM = RNG.normal(30, 8, 300)
PRED = Y_NUM + RNG.normal(0, 4, 300)
Y_BIN = (RNG.random(300) < 0.2).astype(int)
SCORE = np.round(RNG.random(300) * 0.8 + 0.2 * Y_BIN, 1)  # many ties


@pytest.mark.parametrize(
    ("name", "y", "scores", "expected"),
    [
        ("macro_f1", Y_CLASS, PROBA, f1_score(Y_CLASS, PROBA.argmax(1), average="macro")),
        ("log_loss", Y_CLASS, PROBA, log_loss(Y_CLASS, PROBA)),
        ("accuracy", Y_CLASS, PROBA, accuracy_score(Y_CLASS, PROBA.argmax(1))),
        ("rmse", Y_NUM, PRED, mean_squared_error(Y_NUM, PRED) ** 0.5),
        ("mae", Y_NUM, PRED, mean_absolute_error(Y_NUM, PRED)),
        ("r2", Y_NUM, PRED, r2_score(Y_NUM, PRED)),
        ("roc_auc", Y_BIN, SCORE, roc_auc_score(Y_BIN, SCORE)),
        ("pr_auc", Y_BIN, SCORE, average_precision_score(Y_BIN, SCORE)),
        ("roc_auc", 1 - Y_BIN, 1 - SCORE, roc_auc_score(1 - Y_BIN, 1 - SCORE)),
        ("pr_auc", np.ones(4, dtype=int), np.array([0.1, 0.4, 0.4, 0.9]), 1.0),
    ],
)
def test_each_task_metric_equals_scikit_learns(name, y, scores, expected):
    assert metric(name, y, scores) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(
    ("name", "y"), [("roc_auc", np.zeros(5, dtype=int)), ("pr_auc", np.zeros(5, dtype=int))]
)
def test_a_ranking_metric_of_one_class_is_nan(name, y):
    assert np.isnan(metric(name, y, np.linspace(0, 1, 5)))


def test_scoring_and_the_gate_do_not_import_scikit_learn():
    code = (
        "import sys, numpy as np, pipelines.promote.stage\n"
        "from pipelines.evaluate.metrics import metric\n"
        "metric('roc_auc', np.array([0, 1, 1]), np.array([0.2, 0.7, 0.4]))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sklearn')[:3])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"scikit-learn imported by the gate's path: {out.stdout.strip()}"


@pytest.mark.parametrize("name", ["macro_f1", "log_loss", "accuracy", "rmse", "mae", "r2"])
def test_a_resample_scores_as_the_rows_it_repeats(name):
    y, scores = (Y_CLASS, PROBA) if name in ("macro_f1", "log_loss", "accuracy") else (Y_NUM, PRED)
    counts = np.random.default_rng(0).integers(0, 3, (5, len(y)))
    resampled = resampled_metric(name, y, scores, counts)
    direct = [metric(name, np.repeat(y, c, axis=0), np.repeat(scores, c, axis=0)) for c in counts]
    assert resampled == pytest.approx(direct, rel=1e-9)


@pytest.mark.parametrize(
    ("name", "value", "oriented", "better"),
    [("rmse", 2.0, -2.0, "lower"), ("log_loss", 0.5, -0.5, "lower"), ("r2", 0.8, 0.8, "higher")],
)
def test_lower_is_better_metrics_are_oriented(name, value, oriented, better):
    assert orient(name, value) == oriented and direction(name) == better


def test_an_unknown_metric_names_the_choices():
    with pytest.raises(ValueError, match=r"metric 'mape': expected one of .*'rmse'"):
        metric("mape", Y_NUM, PRED)


def test_the_multiclass_report_has_per_class_precision_and_recall():
    y = np.array([0, 0, 1, 2, 2, 2])
    proba = np.eye(3)[[0, 1, 1, 2, 2, 0]]
    report = multiclass_metrics(y, proba, ("a", "b", "c"))
    assert report["precision_a"] == 0.5 and report["recall_a"] == 0.5
    assert report["precision_b"] == 0.5 and report["recall_b"] == 1.0
    assert report["precision_c"] == 1.0 and report["recall_c"] == pytest.approx(2 / 3)
    assert report["accuracy"] == pytest.approx(4 / 6) and report["n"] == 6


def test_the_regression_report_and_its_residuals():
    y, pred = np.array([10.0, 20.0, 30.0]), np.array([12.0, 18.0, 30.0])
    report = regression_metrics(y, pred)
    assert report["rmse"] == pytest.approx((8 / 3) ** 0.5) and report["mae"] == pytest.approx(4 / 3)
    assert report["bias"] == 0.0 and report["n"] == 3
    points = residual_points(y, pred)
    assert [p["residual"] for p in points] == [-2.0, 2.0, 0.0]  # actual - predicted, by prediction


def test_class_labels_become_codes_whatever_their_form():
    codes = class_codes(np.array(["b", 2, 2.0, "z"], dtype=object), ("a", "b", "2"))
    assert codes.tolist() == [1, 2, 2, -1]
