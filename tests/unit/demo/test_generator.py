"""The demo generator: deterministic, schema-true, learnable, drift knobs that move the data."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.common.config import load_params
from pipelines.demo import generator as produce
from tests.support.install import ROOT

SCHEMA = load_params(ROOT / "params.yaml").schema
END = datetime(2024, 6, 1, tzinfo=UTC)
START = END - timedelta(days=14)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return produce.generate(20_000, seed=7, start=START, end=END)


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# -- schema and shape -----------------------------------------------------------------------


def test_columns_are_exactly_the_demo_schema(frame):
    assert list(frame.columns) == [SCHEMA.key, SCHEMA.event_time, *SCHEMA.feature_names, SCHEMA.target]
    assert list(produce.COLUMNS) == list(frame.columns)


def test_categories_come_from_the_schema(frame):
    for column in SCHEMA.categorical:
        assert set(frame[column.name]) <= set(column.categories), column.name
        assert frame[column.name].nunique() == len(column.categories)


def test_values_are_inside_the_schema_ranges(frame):
    for column in SCHEMA.numeric:
        values = frame[column.name].dropna().astype(float)
        assert column.min is None or values.min() >= column.min, column.name
        assert column.max is None or values.max() <= column.max, column.name
    assert frame[SCHEMA.target].isin([0, 1]).all()


def test_only_optional_columns_have_gaps(frame):
    missing = frame.isna().mean()
    assert 0.01 < missing["customer_age"] < 0.035
    assert not SCHEMA.column("customer_age").required
    assert missing.drop("customer_age").eq(0).all()


def test_dtypes_match_the_landing_tier(frame):
    assert {c: str(t) for c, t in frame.dtypes.items()} == {
        "transaction_id": "object",
        "event_time": "datetime64[us, UTC]",
        "amount": "float64",
        "merchant_category": "object",
        "country": "object",
        "device": "object",
        "hour_of_day": "Int64",
        "customer_age": "Int64",
        "account_tenure_days": "Int64",
        "is_fraud": "int8",
    }


def test_event_times_fill_the_window_in_order_with_matching_hours(frame):
    times = frame["event_time"]
    assert times.is_monotonic_increasing
    assert times.min() >= pd.Timestamp(START) and times.max() < pd.Timestamp(END)
    assert (times.dt.hour == frame["hour_of_day"]).all()
    by_hour = frame["hour_of_day"].value_counts()
    assert by_hour[13] > 3 * by_hour[3]  # diurnal: busier by day


def test_default_window_is_the_14_days_before_today():
    start, end = produce.default_window()
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    assert (start, end) == (today - timedelta(days=14), today)


def test_keys_are_unique_and_never_collide_across_seeds_or_batches():
    a = produce.generate(1_000, seed=1, end=END)["transaction_id"]
    b = produce.generate(1_000, seed=2, end=END)["transaction_id"]
    c = produce.generate(1_000, seed=1, end=END, batch="other")["transaction_id"]
    assert a.is_unique and not (set(a) & set(b)) and not (set(a) & set(c))


# -- the label ------------------------------------------------------------------------------


def test_fraud_rate_is_imbalanced(frame):
    assert 0.02 <= frame["is_fraud"].mean() <= 0.05


@pytest.mark.slow
def test_the_signal_is_learnable_but_not_perfect():
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    data = produce.generate(30_000, seed=11, end=END)
    x = pd.DataFrame(
        {
            "amount": np.log(data["amount"]),
            "hour": data["hour_of_day"].astype(float),
            "age": data["customer_age"].astype(float),
            "tenure": data["account_tenure_days"].astype(float),
            **{c: data[c].astype("category").cat.codes for c in ("merchant_category", "country", "device")},
        }
    )
    y = data["is_fraud"]
    model = HistGradientBoostingClassifier(max_iter=60, categorical_features=[4, 5, 6], random_state=0)
    model.fit(x[:20_000], y[:20_000])
    auc = roc_auc_score(y[20_000:], model.predict_proba(x[20_000:])[:, 1])
    assert 0.8 < auc < 0.97


def test_fraud_is_concentrated_where_the_rule_puts_it(frame):
    night = frame["hour_of_day"] <= 5
    new_web = (frame["account_tenure_days"] < 30) & (frame["device"] == "web")
    rate = frame["is_fraud"].mean()
    assert frame.loc[night, "is_fraud"].mean() > 2 * rate
    assert frame.loc[new_web, "is_fraud"].mean() > 4 * rate


# -- drift knobs ----------------------------------------------------------------------------


def test_covariate_drift_shifts_the_inputs(frame):
    drifted = produce.generate(20_000, seed=7, start=START, end=END, covariate_drift=1.0)
    assert drifted["amount"].mean() > 1.5 * frame["amount"].mean()
    risky = ["electronics", "gaming", "crypto", "travel"]
    assert (
        drifted["merchant_category"].isin(risky).mean() > frame["merchant_category"].isin(risky).mean() + 0.1
    )
    assert (drifted["device"] == "web").mean() > (frame["device"] == "web").mean() + 0.1
    assert drifted["customer_age"].mean() < frame["customer_age"].mean() - 8


def test_concept_drift_changes_the_relationship_not_the_inputs(frame):
    drifted = produce.generate(20_000, seed=7, start=START, end=END, concept_drift=1.0)
    pd.testing.assert_frame_equal(drifted.drop(columns="is_fraud"), frame.drop(columns="is_fraud"))

    def everyday_daytime_mobile_rate(data):
        mask = (
            data["merchant_category"].isin(["grocery", "utilities"])
            & (data["amount"] < 40)
            & (data["device"] == "mobile")
            & data["hour_of_day"].between(9, 17)
        )
        return data.loc[mask, "is_fraud"].mean()

    assert everyday_daytime_mobile_rate(drifted) > 5 * everyday_daytime_mobile_rate(frame)
    night = frame["hour_of_day"] <= 5
    assert drifted.loc[night, "is_fraud"].mean() < frame.loc[night, "is_fraud"].mean()


@pytest.mark.parametrize("option", ["covariate_drift", "concept_drift"])
@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_drift_outside_0_1_is_refused(option, value):
    with pytest.raises(ValueError, match=f"{option} = {value}: expected a number between 0 and 1"):
        produce.generate(10, **{option: value})


# -- files ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", produce.FORMATS)
def test_same_arguments_give_byte_identical_files(tmp_path, fmt):
    args = dict(rows=3_000, seed=5, start=START, end=END, files=2, fmt=fmt, malformed_fraction=0.05)
    first = produce.produce(str(tmp_path / "a"), **args)
    second = produce.produce(str(tmp_path / "b"), **args)
    assert files_of(tmp_path / "a") == files_of(tmp_path / "b")
    assert list(files_of(tmp_path / "a")) == [f"demo-0.{fmt}", f"demo-1.{fmt}"]
    assert {k: v for k, v in first.items() if k != "paths"} == {
        k: v for k, v in second.items() if k != "paths"
    }
    other = produce.produce(str(tmp_path / "c"), **{**args, "seed": 6})
    assert files_of(tmp_path / "c") != files_of(tmp_path / "a") and other["rows"] == 3_000


def test_summary_is_json_able_and_describes_the_files(tmp_path):
    summary = produce.produce(
        str(tmp_path / "out"), rows=1_000, seed=1, start=START, end=END, files=3, batch="week-1"
    )
    json.dumps(summary)
    assert summary["paths"] == [str(tmp_path / "out" / f"week-1-{k}.jsonl") for k in range(3)]
    assert (summary["rows"], summary["files"], summary["malformed"]) == (1_000, 3, 0)
    lines = sum(len(Path(p).read_bytes().splitlines()) for p in summary["paths"])
    assert lines == 1_000
    assert 0.0 < summary["fraud_rate"] < 0.1


def test_clean_jsonl_round_trips_to_the_generated_frame(tmp_path):
    produce.produce(str(tmp_path), rows=500, seed=3, start=START, end=END)
    rows = [json.loads(x) for x in (tmp_path / "demo-0.jsonl").read_text().splitlines()]
    expected = produce.generate(500, seed=3, start=START, end=END)
    got = pd.DataFrame(rows)
    assert list(got.columns) == list(expected.columns)
    assert got["amount"].tolist() == expected["amount"].tolist()
    assert (pd.to_datetime(got["event_time"], utc=True) == expected["event_time"]).all()


@pytest.mark.parametrize(("fmt", "kinds"), list(produce.MALFORMED_KINDS.items()))
def test_malformed_fraction_is_honoured_with_every_kind(tmp_path, fmt, kinds):
    summary = produce.produce(
        str(tmp_path), rows=2_000, seed=2, start=START, end=END, fmt=fmt, malformed_fraction=0.02
    )
    assert summary["malformed"] == 40
    assert set(summary["malformed_kinds"]) == set(kinds)
    assert sum(summary["malformed_kinds"].values()) == 40


def test_malformed_jsonl_holds_invalid_bytes_and_oversized_lines(tmp_path):
    produce.produce(
        str(tmp_path),
        rows=200,
        seed=2,
        start=START,
        end=END,
        malformed_fraction=len(produce.MALFORMED_JSONL) / 200,
    )
    lines = (tmp_path / "demo-0.jsonl").read_bytes().split(b"\n")[:-1]
    assert len(lines) == 200
    assert any(b"\xff" in x for x in lines)
    assert max(map(len, lines)) > 65_536


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fmt": "xml"}, "fmt = 'xml': expected one of"),
        ({"files": 0}, "files = 0: expected at least 1"),
        ({"malformed_fraction": 2.0}, "malformed_fraction = 2.0: expected a number between 0 and 1"),
        ({"batch": "a/b"}, "batch = 'a/b': expected letters, digits and _.- only"),
        ({"start": END, "end": START}, "must be before end"),
    ],
)
def test_bad_arguments_are_refused(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        produce.produce(str(tmp_path), rows=10, **kwargs)


def test_more_files_than_rows_still_writes_every_file(tmp_path):
    summary = produce.produce(str(tmp_path), rows=2, files=3, start=START, end=END)
    assert len(summary["paths"]) == 3
    assert (tmp_path / "demo-2.jsonl").read_bytes() == b""
