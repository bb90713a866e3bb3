"""params.yaml loads into frozen typed objects.

An invalid file names the key, the value and what was expected.
"""

from __future__ import annotations

import copy

import pytest
import yaml
from pydantic import ValidationError

from pipelines.common.config import ParamsError, apply_overrides, load_params, parse_params, read_params_dict


@pytest.fixture
def raw(repo_root):
    return read_params_dict(repo_root / "params.yaml")


def test_demo_params_load(demo_params):
    assert demo_params.schema.target == "is_fraud"
    assert demo_params.schema.key == "transaction_id"
    assert {c.name for c in demo_params.schema.categorical} >= {"merchant_category", "country", "device"}
    assert demo_params.train.epochs >= 1


def test_params_are_frozen(demo_params):
    with pytest.raises(ValidationError):
        demo_params.train.epochs = 3  # type: ignore[misc]


def _set(raw: dict, dotted: str, value):
    data = copy.deepcopy(raw)
    node = data
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[leaf] = value
    return data


@pytest.mark.parametrize(
    ("dotted", "value", "expected_fragments"),
    [
        ("train.epochs", 0, ["train.epochs", "0", "greater than or equal to 1"]),
        ("train.epochs", "many", ["train.epochs", "'many'", "integer"]),
        ("train.device", "tpu", ["train.device", "'tpu'", "'auto'", "'cpu'", "'cuda'"]),
        ("schema.columns.0.type", "floaty", ["schema.columns[0].type", "'floaty'", "'float'"]),
        ("featurize.train_fraction", 0.9, ["train_fraction + valid_fraction", "0.9"]),
        ("validate.mostly", 1.5, ["validate.mostly", "1.5", "less than or equal to 1"]),
        ("promote.metric", "accuracy", ["promote.metric", "'accuracy'"]),
        ("train.epoch", 3, ["train.epoch", "unknown key"]),
    ],
)
def test_invalid_value_names_key_value_and_expectation(raw, dotted, value, expected_fragments):
    with pytest.raises(ParamsError) as err:
        parse_params(_set(raw, dotted, value), source="params.yaml")
    for fragment in expected_fragments:
        assert fragment in str(err.value)


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda d: d["schema"].pop("target"), "schema.target: missing"),
        (lambda d: d["schema"]["columns"].append(dict(d["schema"]["columns"][0])), "repeated"),
        (lambda d: d["schema"]["columns"][1].pop("categories"), "needs a non-empty 'categories'"),
        (lambda d: d["schema"].update(key=d["schema"]["target"]), "three different columns"),
        (lambda d: d["schema"]["columns"][0].update(min=10, max=1), "min 10.0 > max 1.0"),
    ],
)
def test_schema_rules(raw, mutate, fragment):
    data = copy.deepcopy(raw)
    mutate(data)
    with pytest.raises(ParamsError, match="params.yaml is invalid") as err:
        parse_params(data, source="params.yaml")
    assert fragment in str(err.value)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "params.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("schema: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ParamsError, match="expected a mapping"):
        load_params(bad)


def test_overrides_apply_and_are_checked(raw):
    out = apply_overrides(raw, {"train.epochs": 3, "snapshot.as_of": "2026-11-20T00:00:00+00:00"})
    assert out["train"]["epochs"] == 3
    assert raw["train"]["epochs"] != 3 or raw is not out
    assert parse_params(out).snapshot.as_of.year == 2026
    with pytest.raises(ParamsError, match="train.epochs"):
        apply_overrides(raw, {"train.epochs": -1})
    with pytest.raises(ParamsError, match="unknown key"):
        apply_overrides(raw, {"train.epochz": 3})


def test_other_dataset_schema_loads():
    params = parse_params(
        yaml.safe_load("""
schema:
  name: churn
  key: customer
  event_time: observed_at
  target: churned
  columns:
    - {name: tenure, type: float, min: 0}
    - {name: plan, type: category, categories: [basic, pro]}
""")
    )
    assert params.schema.feature_names == ("tenure", "plan")
    assert params.train.epochs == 20  # defaults fill the sections not given
