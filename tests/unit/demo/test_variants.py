"""The regression and multiclass demos: seeded, of their own schemas, and moved by the drift options."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from pipelines.common.config import load_params
from pipelines.demo.variants import generate_task, produce_task, task_messages
from tests.support.install import ROOT

START, END = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 15, tzinfo=UTC)
EXAMPLES = {"regression": "delivery-times", "multiclass": "support-tickets"}


@pytest.mark.parametrize("task", sorted(EXAMPLES))
def test_the_same_arguments_give_the_same_rows_of_the_examples_schema(task):
    frame = generate_task(task, 500, seed=3, start=START, end=END)
    assert frame.equals(generate_task(task, 500, seed=3, start=START, end=END))
    schema = load_params(ROOT / "examples" / EXAMPLES[task] / "params.yaml").schema
    assert list(frame.columns) == [schema.key, schema.event_time, *schema.feature_names, schema.target]
    assert frame[schema.event_time].is_monotonic_increasing
    if task == "multiclass":
        assert set(frame[schema.target]) == set(schema.classes)
    else:
        assert frame[schema.target].between(schema.target_min, schema.target_max).all()


def test_drift_moves_the_inputs_and_the_rule():
    calm = generate_task("regression", 4000, seed=1, start=START, end=END)
    moved = generate_task("regression", 4000, seed=1, start=START, end=END, covariate_drift=1.0)
    assert moved["distance_km"].mean() > 1.4 * calm["distance_km"].mean()
    changed = generate_task("regression", 4000, seed=1, start=START, end=END, concept_drift=1.0)
    evening = calm["hour_of_day"].between(17, 21).to_numpy()
    slower = changed["delivery_minutes"][evening].mean() - calm["delivery_minutes"][evening].mean()
    assert slower > 3 and (changed["delivery_minutes"][~evening] == calm["delivery_minutes"][~evening]).all()


def test_produce_writes_json_lines(tmp_path):
    summary = produce_task(str(tmp_path), "multiclass", 50, seed=2, start=START, end=END)
    lines = (tmp_path / "demo-multiclass.jsonl").read_text().splitlines()
    assert summary["paths"] == [str(tmp_path / "demo-multiclass.jsonl")] and len(lines) == 50
    assert json.loads(lines[0])["opened_at"].endswith("Z") and sum(summary["class_counts"].values()) == 50


def test_an_unknown_task_or_drift_is_refused():
    with pytest.raises(ValueError, match="task 'ranking': expected one of"):
        generate_task("ranking", 10)
    with pytest.raises(ValueError, match=r"concept_drift = 2.0: expected a fraction in \[0, 1\]"):
        generate_task("regression", 10, concept_drift=2.0)


@pytest.mark.parametrize("task", ["regression", "multiclass"])
def test_task_messages_are_the_rows_keyed_by_their_event_key(task):
    """What `flywheel produce --task ... --to kafka` sends: a JSON object per row, keyed by its event key."""
    keys, values, summary = task_messages(task, 30, seed=4, batch="b")
    frame = generate_task(task, 30, seed=4, batch="b")
    rows = [json.loads(v) for v in values]
    assert [k.decode() for k in keys] == list(frame[frame.columns[0]]) == [r[frame.columns[0]] for r in rows]
    assert [r[frame.columns[-1]] for r in rows] == list(frame[frame.columns[-1]])
    assert summary["task"] == task and summary["rows"] == 30 and summary["seed"] == 4
