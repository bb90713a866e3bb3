"""Live performance: late labels joined to the predictions, the metric per day with its interval."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.common.config import PromoteConfig
from pipelines.common.lake import MANIFEST, Lake
from pipelines.evaluate.metrics import metric
from pipelines.scoring import LABELS, LabelError, daily_performance, join_labels, read_labels, write_labels
from pipelines.scoring.live import read_label_file
from tests.support.data import churn_params

SCHEMA = churn_params().schema
GATE = PromoteConfig(block="1h", min_blocks=8, bootstrap_rounds=200, confidence=0.9)


def predictions(days: int = 3, per_day: int = 240, seed: int = 0, labelled: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = days * per_day
    y = (rng.random(n) < 0.3).astype("int8")
    score = 1 / (1 + np.exp(-(y * 1.5 + rng.normal(0, 1, n))))
    times = pd.Timestamp("2026-06-01", tz="UTC") + pd.to_timedelta(np.sort(rng.random(n)) * days, unit="D")
    return pd.DataFrame(
        {
            "customer_id": [f"c{i:05d}" for i in range(n)],
            "observed_at": times,
            "score": score,
            "churned": pd.array(y if labelled else [pd.NA] * n, dtype="Int8"),
            "model_version": "1",
        }
    )


def test_late_labels_replace_or_fill_labels_by_key():
    preds = predictions(1, 10, labelled=False)
    preds.loc[0, "churned"] = 1
    labels = pd.DataFrame({"customer_id": ["c00000", "c00003", "unknown"], "churned": [0, 1, 1]})
    joined = join_labels(preds, labels, SCHEMA)
    assert joined.loc[0, "churned"] == 0 and joined.loc[3, "churned"] == 1  # replaced, filled
    assert joined["churned"].notna().sum() == 2 and len(joined) == 10
    assert list(joined["late_label"]) == [True, False, False, True] + [False] * 6


@pytest.mark.parametrize(
    ("known", "late", "label", "flagged"),
    [
        (None, 1, 1, True),  # the prediction had no label: a late label fills it
        (0, 1, 1, True),  # a different label replaces it
        (1, 1, 1, False),  # the same label again (an event delivered again): nothing new
        (0, None, 0, False),  # no late label: the label known at scoring time stays
    ],
)
def test_only_a_late_label_that_is_news_is_flagged(known, late, label, flagged):
    preds = predictions(1, 2, labelled=False)
    preds.loc[0, "churned"] = pd.NA if known is None else known
    labels = None if late is None else pd.DataFrame({"customer_id": ["c00000"], "churned": [late]})
    joined = join_labels(preds, labels, SCHEMA)
    assert joined.loc[0, "churned"] == label and bool(joined.loc[0, "late_label"]) is flagged
    assert not joined.loc[1, "late_label"]


def test_late_labels_land_as_string_keys_and_int8_labels_and_a_rewrite_replaces_them(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    partition = lake.path(LABELS, "source=files", "run=r1")
    labels = pd.DataFrame({"customer_id": ["c1", "c2", "c3"], "churned": [1, 0, 1]})
    write_labels(lake, partition, labels, SCHEMA, "landing/source=files/run=r1")
    write_labels(lake, partition, labels.head(2), SCHEMA, "landing/source=files/run=r1")
    assert lake.complete_partitions(LABELS) == [partition]
    frame = read_labels(lake, SCHEMA)
    assert frame is not None and list(frame["customer_id"]) == ["c1", "c2"]
    assert str(frame["churned"].dtype) == "int8" and lake.read_json(f"{partition}/{MANIFEST}")["rows"] == 2


def test_the_last_landed_label_of_a_key_wins(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    for run, label in (("r1", 1), ("r2", 0)):
        frame = pd.DataFrame({"customer_id": ["c1"], "churned": [label]})
        write_labels(lake, lake.path(LABELS, f"run={run}"), frame, SCHEMA, run)
    assert read_labels(lake, SCHEMA)["churned"].tolist() == [0]


def test_each_day_gets_its_metric_and_a_block_bootstrap_interval():
    preds = predictions()
    days = daily_performance(join_labels(preds, None, SCHEMA), SCHEMA, "roc_auc", GATE, min_rows=50)
    assert [d["day"] for d in days] == ["2026-06-01", "2026-06-02", "2026-06-03"]
    first = preds[preds["observed_at"] < pd.Timestamp("2026-06-02", tz="UTC")]
    expected = metric("roc_auc", first["churned"].astype(int).to_numpy(), first["score"].to_numpy())
    assert days[0]["value"] == pytest.approx(expected) and days[0]["rows"] == len(first)
    for day in days:
        interval = day["interval"]
        assert interval["blocks"] == 24 and interval["block"] == "1h"
        assert interval["low"] < day["value"] < interval["high"], day


@pytest.mark.parametrize(
    ("change", "min_rows", "note"),
    [
        (lambda p: p, 10_000, "fewer than score.min_day_rows 10000"),
        (lambda p: p.assign(churned=pd.array([1] * len(p), dtype="Int8")), 10, "hold one class"),
        (lambda p: p.assign(observed_at=pd.Timestamp("2026-06-01T05:00", tz="UTC")), 10, "1 blocks of 1h"),
    ],
)
def test_a_day_that_cannot_be_judged_says_why(change, min_rows, note):
    days = daily_performance(change(predictions(1)), SCHEMA, "roc_auc", GATE, min_rows=min_rows)
    assert len(days) == 1 and days[0]["interval"] is None and note in days[0]["note"]


def test_unlabelled_predictions_make_no_day():
    assert daily_performance(predictions(labelled=False), SCHEMA, "roc_auc", GATE, min_rows=1) == []


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("labels.txt", "x", r"suffix '.txt'; expected .parquet, .csv or .jsonl"),
        ("labels.csv", "customer_id,label\nc1,1\n", r"lacks column\(s\) \['churned'\]"),
        ("labels.csv", "customer_id,churned\nc1,yes\n", r"'churned' values such as 'yes'; expected 0 or 1"),
    ],
)
def test_a_bad_label_file_is_named(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(LabelError, match=message):
        read_label_file(path, SCHEMA)


def test_a_label_file_reads_keys_and_labels(tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_text('{"customer_id": "c1", "churned": 1}\n{"customer_id": "c2", "churned": 0}\n')
    frame = read_label_file(path, SCHEMA)
    assert list(frame["customer_id"]) == ["c1", "c2"] and list(frame["churned"]) == [1, 0]
