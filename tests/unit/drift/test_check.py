"""The drift check's core on small frames of any schema: shifts found, bad input named, sampling faithful."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.common.config import DriftConfig, Schema
from pipelines.drift.check import PREDICTION, DriftInputError, compare, sample, standard_error, stattest_score
from pipelines.drift.decision import decide_retrain

SCHEMA = Schema.model_validate(
    {
        "name": "sensors",
        "key": "id",
        "event_time": "at",
        "target": "failed",
        "columns": [
            {"name": "temperature", "type": "float", "critical": True},
            {"name": "load", "type": "int", "required": False},
            {"name": "site", "type": "category", "categories": ["n", "s", "e", "w"]},
        ],
    }
)
CFG = DriftConfig(min_rows=100, sample_rows=None)


def frame(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    temperature = rng.normal(60 + 10 * shift, 10, rows)
    site_p = np.array([0.4, 0.3, 0.2, 0.1]) * (1 - shift) + np.array([0.1, 0.2, 0.3, 0.4]) * shift
    return pd.DataFrame(
        {
            "id": [f"{seed}-{i}" for i in range(rows)],
            "at": pd.Timestamp("2026-11-01", tz="UTC"),
            "temperature": temperature,
            "load": pd.array(rng.integers(0, 100, rows), dtype="Int64"),
            "site": rng.choice(["n", "s", "e", "w"], rows, p=site_p).astype(object),
            "failed": (rng.random(rows) < 1 / (1 + np.exp(-(temperature - 75) / 5))).astype("int8"),
        }
    )


def by_name(result):
    return {c.name: c for c in result.columns}


def test_no_shift_no_drift_and_a_shift_is_found():
    reference = frame(3000, 1)
    calm = compare(reference, frame(2000, 2), SCHEMA, CFG).result
    assert calm.drifted_columns == [] and calm.rows_current == 2000 and calm.rows_reference == 3000
    shifted = compare(reference, frame(2000, 3, shift=1.0), SCHEMA, CFG)
    assert set(shifted.result.drifted_columns) == {"temperature", "site"}
    assert (
        by_name(shifted.result)["temperature"].critical and by_name(shifted.result)["temperature"].score > 0.5
    )
    assert shifted.snapshot is not None and "Drifted Columns" in shifted.snapshot.get_html_str(
        as_iframe=False
    )


def test_prediction_drift_and_quality_when_the_window_is_labelled():
    def predict(rows: pd.DataFrame) -> np.ndarray:
        assert list(rows.columns) == list(SCHEMA.feature_names)  # raw feature columns only
        return 1 / (1 + np.exp(-(rows["temperature"].to_numpy() - 75) / 5))

    result = compare(frame(3000, 1), frame(2000, 3, shift=1.0), SCHEMA, CFG, predict).result
    assert (
        result.prediction is not None and result.prediction.name == PREDICTION and result.prediction.drifted
    )
    assert result.roc_auc > 0.8 and 0 < result.pr_auc <= 1


def test_one_class_labels_give_no_quality_and_say_so():
    current = frame(1000, 2).assign(failed=0)
    result = compare(frame(3000, 1), current, SCHEMA, CFG, lambda rows: np.full(len(rows), 0.1)).result
    assert result.roc_auc is None and any("one class" in n for n in result.notes)


def test_an_empty_window_is_a_clear_no_retrain():
    result = compare(frame(3000, 1), frame(0, 2), SCHEMA, CFG).result
    assert result.rows_current == 0 and result.columns == () and "0 rows" in result.notes[-1]
    verdict = decide_retrain(result, CFG, None, pd.Timestamp.now(tz="UTC").to_pydatetime())
    assert verdict.retrain is False and "0 rows, fewer than drift.min_rows 100" in verdict.reasons[0]


def test_a_window_missing_a_column_is_an_error_naming_it():
    with pytest.raises(DriftInputError, match=r"lacks column\(s\) \['site'\]; expected the schema's columns"):
        compare(frame(3000, 1), frame(1000, 2).drop(columns="site"), SCHEMA, CFG)


def test_a_reference_without_a_new_column_skips_it_with_a_note():
    result = compare(frame(3000, 1).drop(columns="load"), frame(1000, 2), SCHEMA, CFG).result
    assert (
        "load" not in by_name(result) and "'load' is not in the champion's training data" in result.notes[0]
    )


def test_an_empty_reference_is_an_error():
    with pytest.raises(DriftInputError, match="reference .* has 0 rows"):
        compare(frame(0, 1), frame(1000, 2), SCHEMA, CFG)


def test_all_null_columns():
    current = frame(1000, 2).assign(load=pd.array([None] * 1000, dtype="Int64"))
    result = compare(frame(3000, 1), current, SCHEMA, CFG).result
    load = by_name(result)["load"]
    assert load.drifted and load.score is None and "all values are null in the current window" in load.note
    both = compare(frame(3000, 1).assign(load=pd.NA), current, SCHEMA, CFG).result
    assert by_name(both)["load"].skipped and "load" not in both.drifted_columns
    assert both.drift_share == 0.0


def test_categories_unseen_in_the_reference_and_missing_values_are_fine():
    current = frame(1000, 2)
    current.loc[:99, "site"] = "x"
    current.loc[100:199, "site"] = None
    result = compare(frame(3000, 1), current, SCHEMA, CFG).result
    assert by_name(result)["site"].score > 0


def test_sample_is_seeded_and_bounded():
    data = frame(5000, 1)
    assert (
        sample(data, 1000, 0).index.equals(sample(data, 1000, 0).index) and len(sample(data, 1000, 0)) == 1000
    )
    assert sample(data, None, 0) is data and sample(data, 10_000, 0) is data


def test_sampled_check_keeps_the_full_data_verdicts():
    reference, current = frame(30_000, 1), frame(30_000, 4, shift=0.1)
    full = compare(reference, current, SCHEMA, CFG).result
    sampled = compare(reference, current, SCHEMA, CFG.model_copy(update={"sample_rows": 3000})).result
    assert sampled.sampling["sampled"] and sampled.sampling["current_rows_used"] == 3000
    assert {c.name: c.drifted for c in sampled.columns} == {c.name: c.drifted for c in full.columns}
    for name, stats in sampled.sampling["columns"].items():
        assert stats["se"] > 0, name
        if "full_score" in stats:  # re-tested in full: the very score of the full report
            assert by_name(sampled)[name].score == pytest.approx(by_name(full)[name].score, rel=1e-9)


def test_standard_error_shrinks_with_the_sample():
    rng = np.random.default_rng(0)
    small = standard_error(
        pd.Series(rng.normal(0, 1, 2000)), pd.Series(rng.normal(0.2, 1, 2000)), "num", "wasserstein", 0.1
    )
    large = standard_error(
        pd.Series(rng.normal(0, 1, 50_000)), pd.Series(rng.normal(0.2, 1, 50_000)), "num", "wasserstein", 0.1
    )
    assert 0 < large < small
    assert (
        stattest_score(pd.Series([1.0, np.nan, np.inf]), pd.Series([1.0, 2.0]), "num", "wasserstein", 0.1) > 0
    )


def test_a_champion_that_cannot_score_leaves_a_note_not_a_crash():
    def broken(rows: pd.DataFrame) -> np.ndarray:
        raise ValueError("feature 'site' has an unknown dtype")

    result = compare(frame(3000, 1), frame(1000, 2), SCHEMA, CFG, broken).result
    assert result.prediction is None and result.roc_auc is None
    assert "champion could not score the rows" in result.notes[-1] and "unknown dtype" in result.notes[-1]
    assert len(result.columns) == 3


def test_a_column_too_sparse_to_sample_is_tested_on_all_rows():
    reference, current = frame(20_000, 1), frame(20_000, 2)
    current["load"] = pd.array([pd.NA] * 20_000, dtype="Int64")
    current.loc[[7, 19_000], "load"] = 99  # two values: the sample will hardly hold them
    result = compare(reference, current, SCHEMA, CFG.model_copy(update={"sample_rows": 1000})).result
    load = by_name(result)["load"]
    assert load.note == "too few values to sample: tested on all rows" and load.drifted


def test_nothing_left_to_test_is_an_empty_report_not_a_crash():
    nulls = {"temperature": np.nan, "load": pd.NA, "site": None}
    result = compare(frame(2000, 1).assign(**nulls), frame(1000, 2).assign(**nulls), SCHEMA, CFG).result
    assert all(c.skipped for c in result.columns) and result.drift_share == 0.0
