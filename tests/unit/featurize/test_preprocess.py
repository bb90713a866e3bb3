"""Featurize: time-ordered split, train-only preprocessing, deterministic outputs, clear errors.

The fixtures build a small non-demo dataset ("churn") with a learnable signal;
tests of the model, train and evaluate stages import them from here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.common.config import Params
from pipelines.featurize import preprocess as featurize
from pipelines.featurize.preprocess import FeaturizeError, MissingFeatureError, Preprocessor
from tests.support.data import churn_events, churn_params, write_snapshot


@pytest.fixture
def params() -> Params:
    return churn_params()


@pytest.fixture
def events() -> pd.DataFrame:
    return churn_events()


# -- split ---------------------------------------------------------------------------------------


def test_split_is_time_ordered_with_the_configured_sizes(params, events):
    shuffled = events.sample(frac=1.0, random_state=1)
    splits = featurize.split_by_time(shuffled, params.schema, params.featurize)

    assert [len(splits.train), len(splits.valid), len(splits.test)] == [280, 60, 60]
    assert splits.train.observed_at.max() <= splits.valid.observed_at.min()
    assert splits.valid.observed_at.max() <= splits.test.observed_at.min()
    joined = pd.concat([f for _, f in splits.items()], ignore_index=True)
    pd.testing.assert_frame_equal(joined, events)


def test_time_ties_are_broken_by_key(params):
    events = churn_events(20)
    events["observed_at"] = events.observed_at.iloc[0]
    splits = featurize.split_by_time(events.iloc[::-1], params.schema, params.featurize)
    keys = pd.concat([f.customer_id for _, f in splits.items()]).tolist()
    assert keys == sorted(keys)


def test_split_keeps_only_the_schema_columns(params, events):
    splits = featurize.split_by_time(
        events.assign(_origin="x.jsonl:1", extra=1), params.schema, params.featurize
    )
    assert list(splits.train.columns) == [
        "customer_id",
        "observed_at",
        "tenure",
        "plan",
        "support_calls",
        "churned",
    ]


# -- preprocessing -----------------------------------------------------------------------------


def test_preprocessing_is_fitted_on_train_only(params, events):
    events.loc[events.index[-10:], "plan"] = "enterprise"  # a plan that appears only in test
    events.loc[events.index[-10:], "tenure"] = 119.0
    result = featurize.build_features(events, params.schema, params.featurize)
    pre = result.preprocessor

    assert pre.categorical[0].vocabulary == ("basic", "max", "pro")
    assert (result.features["test"].plan.iloc[-10:] == 0).all()
    tenure = result.splits.train.tenure
    assert pre.numeric[0].mean == pytest.approx(tenure.mean())
    assert pre.numeric[0].std == pytest.approx(tenure.std(ddof=0))
    assert result.features["train"].tenure.mean() == pytest.approx(0.0, abs=1e-5)


def test_feature_dtypes_and_order(params, events):
    features = featurize.build_features(events, params.schema, params.featurize).features["valid"]
    assert features.dtypes.astype(str).to_dict() == {
        "tenure": "float32",
        "support_calls": "float32",
        "plan": "int64",
        "churned": "int8",
    }


def test_missing_values_take_the_train_median(params, events):
    result = featurize.build_features(events, params.schema, params.featurize)
    spec = result.preprocessor.numeric[1]
    train = result.splits.train.support_calls
    assert spec.median == float(train.dropna().median())
    missing = train.isna().to_numpy()
    assert missing.any()
    expected = np.float32((spec.median - spec.mean) / spec.std)
    assert np.allclose(result.features["train"].support_calls.to_numpy()[missing], expected)


@pytest.mark.parametrize(
    ("min_count", "expected"),
    [(1, ("basic", "max", "pro", "rare")), (2, ("basic", "max", "pro"))],
)
def test_rare_categories_map_to_unknown(events, min_count, expected):
    params = churn_params(featurize={"min_category_count": min_count})
    events.loc[0, "plan"] = "rare"
    pre = featurize.build_features(events, params.schema, params.featurize).preprocessor
    assert pre.categorical[0].vocabulary == expected


def test_values_are_clipped_to_the_schema_bounds(params, events):
    pre = featurize.build_features(events, params.schema, params.featurize).preprocessor
    raw = pd.DataFrame({"tenure": [120.0, 5000.0, -3.0, 0.0], "plan": ["pro"] * 4})
    numeric, _ = pre.transform(raw)
    assert numeric[0, 0] == numeric[1, 0]
    assert numeric[2, 0] == numeric[3, 0]


def test_spec_round_trips_through_json(params, events):
    pre = featurize.build_features(events, params.schema, params.featurize).preprocessor
    assert Preprocessor.from_dict(pre.to_dict()) == pre
    assert pre.to_dict()["feature_order"] == ["tenure", "support_calls", "plan"]


def test_transform_accepts_raw_serving_rows(params, events):
    pre = featurize.build_features(events, params.schema, params.featurize).preprocessor
    raw = pd.DataFrame(
        {
            "plan": ["pro", "platinum", None],  # a known, an unknown and a missing category
            "tenure": ["12.5", 3, None],  # strings and ints coerced, missing imputed
            "support_calls": pd.array([1, None, 2], dtype="Int64"),
            "customer_id": ["a", "b", "c"],
            "unrelated": [1, 2, 3],
        }
    )
    numeric, categorical = pre.transform(raw)

    assert numeric.dtype == np.float32 and numeric.shape == (3, 2)
    assert categorical.dtype == np.int64 and categorical.shape == (3, 1)
    assert categorical[:, 0].tolist() == [3, 0, 0]
    assert np.isfinite(numeric).all()
    without_optional, _ = pre.transform(raw.drop(columns="support_calls"))
    assert np.allclose(
        without_optional[:, 1], (pre.numeric[1].median - pre.numeric[1].mean) / pre.numeric[1].std
    )


@pytest.mark.parametrize("dropped", ["tenure", "plan"])
def test_a_missing_required_column_is_named(params, events, dropped):
    pre = featurize.build_features(events, params.schema, params.featurize).preprocessor
    raw = pd.DataFrame({"tenure": [1.0], "plan": ["pro"], "support_calls": [1]}).drop(columns=dropped)
    with pytest.raises(MissingFeatureError, match=rf"\['{dropped}'\]"):
        pre.transform(raw)


# -- errors --------------------------------------------------------------------------------------


def _empty(events: pd.DataFrame) -> pd.DataFrame:
    return events.iloc[:0]


def _three_rows(events: pd.DataFrame) -> pd.DataFrame:
    return events.iloc[:3]


def _one_class(events: pd.DataFrame) -> pd.DataFrame:
    return events.assign(churned=np.int8(0))


def _positives_only_in_test(events: pd.DataFrame) -> pd.DataFrame:
    churned = np.zeros(len(events), dtype="int8")
    churned[-5:] = 1
    return events.assign(churned=churned)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_empty, r"snapshot has 0 rows"),
        (_three_rows, r"valid split is empty: 3 snapshot rows"),
        (_one_class, r"single class \(0\) in all 280 train rows"),
        (_positives_only_in_test, r"single class \(0\) in all 280 train rows"),
    ],
    ids=["empty", "empty-split", "one-class", "positives-only-in-test"],
)
def test_unusable_snapshots_fail_clearly(params, events, make, message):
    with pytest.raises(FeaturizeError, match=message):
        featurize.build_features(make(events), params.schema, params.featurize)


def test_run_without_snapshot_names_the_file(params, tmp_path):
    with pytest.raises(FeaturizeError, match=r"data/snapshot/events.parquet not found"):
        featurize.run(params, None, tmp_path)


# -- the stage -----------------------------------------------------------------------------------


def _outputs(workspace: Path) -> dict[str, bytes]:
    files = sorted((workspace / "data").rglob("*"))
    return {
        str(p.relative_to(workspace)): p.read_bytes()
        for p in files
        if p.is_file() and "snapshot" not in p.parts
    }


def test_run_writes_byte_identical_outputs_on_rerun(params, events, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    for workspace in (first, second):
        write_snapshot(workspace, events)
    summary = featurize.run(params, None, first)
    before = _outputs(first)
    featurize.run(params, None, first)
    featurize.run(params, None, second)

    assert sorted(before) == [
        "data/features/preprocess.json",
        "data/features/test.parquet",
        "data/features/train.parquet",
        "data/features/valid.parquet",
        "data/split/test.parquet",
        "data/split/train.parquet",
        "data/split/valid.parquet",
    ]
    assert _outputs(first) == before
    assert _outputs(second) == before
    assert summary["splits"]["train"]["rows"] == 280


def test_raw_splits_keep_the_snapshot_dtypes(params, events, tmp_path):
    write_snapshot(tmp_path, events)
    featurize.run(params, None, tmp_path)
    split = pd.read_parquet(tmp_path / "data/split/test.parquet")
    assert split.dtypes.astype(str).to_dict() == events.dtypes.astype(str).to_dict()
