"""The preprocessing: fitted on train only, the same at serving time, a clear error for a missing column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.featurize.preprocess import MissingFeatureError, Preprocessor
from pipelines.featurize.stage import build_features
from tests.support.data import churn_params


def test_preprocessing_is_fitted_on_train_only(churn, churn_snapshot):
    events = churn_snapshot
    events.loc[events.index[-10:], "plan"] = "enterprise"  # a plan that appears only in test
    events.loc[events.index[-10:], "tenure"] = 119.0
    result = build_features(events, churn.schema, churn.featurize)
    pre = result.preprocessor

    assert pre.categorical[0].vocabulary == ("basic", "max", "pro")
    assert (result.features["test"].plan.iloc[-10:] == 0).all()
    tenure = result.splits.train.tenure
    assert pre.numeric[0].mean == pytest.approx(tenure.mean())
    assert pre.numeric[0].std == pytest.approx(tenure.std(ddof=0))
    assert result.features["train"].tenure.mean() == pytest.approx(0.0, abs=1e-5)


def test_feature_dtypes_and_order(churn, churn_snapshot):
    features = build_features(churn_snapshot, churn.schema, churn.featurize).features["valid"]
    assert features.dtypes.astype(str).to_dict() == {
        "tenure": "float32",
        "support_calls": "float32",
        "plan": "int64",
        "churned": "int8",
    }


def test_missing_values_take_the_train_median(churn, churn_snapshot):
    result = build_features(churn_snapshot, churn.schema, churn.featurize)
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
def test_rare_categories_map_to_unknown(churn_snapshot, min_count, expected):
    params = churn_params(featurize={"min_category_count": min_count})
    churn_snapshot.loc[0, "plan"] = "rare"
    pre = build_features(churn_snapshot, params.schema, params.featurize).preprocessor
    assert pre.categorical[0].vocabulary == expected


@pytest.fixture
def preprocessor(churn, churn_snapshot) -> Preprocessor:
    return build_features(churn_snapshot, churn.schema, churn.featurize).preprocessor


def test_values_are_clipped_to_the_schema_bounds(preprocessor):
    raw = pd.DataFrame({"tenure": [120.0, 5000.0, -3.0, 0.0], "plan": ["pro"] * 4})
    numeric, _ = preprocessor.transform(raw)
    assert numeric[0, 0] == numeric[1, 0]
    assert numeric[2, 0] == numeric[3, 0]


def test_spec_round_trips_through_json(preprocessor):
    assert Preprocessor.from_dict(preprocessor.to_dict()) == preprocessor
    assert preprocessor.to_dict()["feature_order"] == ["tenure", "support_calls", "plan"]


def test_transform_accepts_raw_serving_rows(preprocessor):
    pre = preprocessor
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
def test_a_missing_required_column_is_named(preprocessor, dropped):
    raw = pd.DataFrame({"tenure": [1.0], "plan": ["pro"], "support_calls": [1]}).drop(columns=dropped)
    with pytest.raises(MissingFeatureError, match=rf"\['{dropped}'\]"):
        preprocessor.transform(raw)
