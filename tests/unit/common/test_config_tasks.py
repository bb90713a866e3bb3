"""``schema.task``: the default keeps today's files working; classes, ranges and the metrics named in
train, promote and drift must fit the task, or loading fails naming the key, the value and the choices."""

from __future__ import annotations

import pytest

from pipelines.common.config import ParamsError, load_params, parse_params, read_params_dict
from tests.support.install import ROOT

EXAMPLES = ROOT / "examples"


def with_schema(**schema: object) -> dict:
    raw = read_params_dict(ROOT / "params.yaml")
    raw["schema"].update(schema)
    return raw


def test_the_shipped_params_are_a_binary_task():
    params = load_params(ROOT / "params.yaml")
    assert params.schema.task == "binary" and params.schema.classes is None
    assert params.schema.output_size == 1 and params.train.model is None


@pytest.mark.parametrize(
    ("folder", "task", "output_size"),
    [("delivery-times", "regression", 1), ("support-tickets", "multiclass", 4)],
)
def test_the_example_datasets_load(folder, task, output_size):
    params = load_params(EXAMPLES / folder / "params.yaml")
    assert params.schema.task == task and params.schema.output_size == output_size


@pytest.mark.parametrize(
    ("schema", "sections", "words"),
    [
        ({"task": "multiclass"}, {}, ["needs 'classes'", "at least 3"]),
        ({"task": "multiclass", "classes": ["a", "a", "b"]}, {}, ["unique"]),
        ({"classes": ["a", "b", "c"]}, {}, ["'classes' is for task multiclass, not task binary"]),
        ({"task": "binary", "target_max": 5}, {}, ["target_min'/'target_max' are for task regression"]),
        ({"task": "regression", "target_min": 5, "target_max": 1}, {}, ["target_min 5.0 > target_max 1.0"]),
        ({"task": "regression"}, {}, ["promote.metric = 'pr_auc'", "task regression", "'rmse'"]),
        (
            {"task": "regression"},
            {"promote": {"metric": "rmse"}, "drift": {"performance_metric": "roc_auc"}},
            ["drift.performance_metric = 'roc_auc'", "one of ['rmse', 'mae', 'r2']"],
        ),
        (
            {"task": "multiclass", "classes": [0, 1, 2]},
            {
                "promote": {"metric": "macro_f1"},
                "drift": {"performance_metric": "log_loss"},
                "train": {"early_stopping_metric": "rmse"},
            },
            ["train.early_stopping_metric = 'rmse'", "task multiclass"],
        ),
        ({"task": "ranking"}, {}, ["schema.task = 'ranking'", "'binary', 'multiclass' or 'regression'"]),
    ],
)
def test_a_task_that_does_not_fit_is_named(schema, sections, words):
    raw = with_schema(**schema)
    for section, values in sections.items():
        raw[section].update(values)
    with pytest.raises(ParamsError) as err:
        parse_params(raw)
    for word in words:
        assert word in str(err.value)


def test_class_labels_read_as_text():
    raw = with_schema(task="multiclass", classes=[0, 1, 2])
    raw["promote"]["metric"] = "macro_f1"
    raw["drift"]["performance_metric"] = "macro_f1"
    assert parse_params(raw).schema.classes == ("0", "1", "2")
