"""Labelled streams for backtests: stationary, or with an abrupt concept change at a known time."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from pipelines.demo import generator
from pipelines.demo.streams import produce_stream

START, CHANGE, END = (datetime(2024, m, 1, tzinfo=UTC) for m in (1, 3, 4))


def read(folder) -> pd.DataFrame:
    frames = [pd.read_json(p, lines=True) for p in sorted(folder.glob("*.jsonl"))]
    return pd.concat(frames, ignore_index=True)


def test_an_abrupt_change_splits_the_stream_at_the_date(tmp_path):
    summary = produce_stream(str(tmp_path), 9_000, seed=3, start=START, end=END, change_at=CHANGE)

    events = read(tmp_path)
    times = pd.to_datetime(events["event_time"], utc=True)
    before = events["transaction_id"].str.startswith("demo-before")
    assert len(events) == 9_000 and events["transaction_id"].is_unique
    assert (times[before] < CHANGE).all() and (times[~before] >= CHANGE).all()
    assert summary["before"]["rows"] == round(9_000 * 60 / 91)  # in proportion to the days before the change
    assert summary["change_at"] == CHANGE.isoformat() and len(summary["paths"]) == 2


def test_the_same_arguments_write_the_same_files(tmp_path):
    for name in ("a", "b"):
        produce_stream(str(tmp_path / name), 2_000, seed=1, start=START, end=END, change_at=CHANGE)
    assert [p.read_bytes() for p in sorted((tmp_path / "a").iterdir())] == [
        p.read_bytes() for p in sorted((tmp_path / "b").iterdir())
    ]


def test_without_a_change_the_stream_is_stationary(tmp_path):
    summary = produce_stream(str(tmp_path), 1_000, seed=2, start=START, end=END)
    assert summary["rows"] == 1_000 and "change_at" not in summary and len(read(tmp_path)) == 1_000


@pytest.mark.parametrize("change", [START, END, datetime(2025, 1, 1, tzinfo=UTC)])
def test_a_change_outside_the_stream_is_refused(tmp_path, change):
    with pytest.raises(ValueError, match="strictly between"):
        produce_stream(str(tmp_path), 100, start=START, end=END, change_at=change)


def test_the_new_concept_is_as_learnable_as_the_old():
    """The true fraud probability ranks fraud about as well under either rule, at a similar base rate."""
    rng = np.random.default_rng(0)
    n = 200_000
    features = generator._features(rng, n, 0.0)
    hour, noise = rng.integers(0, 24, n), rng.normal(0.0, 0.5, n)
    auc, rate = {}, {}
    for concept in (0.0, 1.0):
        chance = generator._fraud_probability(features, hour, concept, noise)
        label = rng.random(n) < chance
        auc[concept], rate[concept] = roc_auc_score(label, chance), label.mean()
    assert abs(auc[0.0] - auc[1.0]) < 0.02 and min(auc.values()) > 0.85
    assert 0.8 < rate[1.0] / rate[0.0] < 1.25


def test_flywheel_produce_writes_a_stream_with_a_change(tmp_path, capsys):
    from pipelines import cli

    args = [
        "produce",
        "--out",
        str(tmp_path),
        "--rows",
        "900",
        "--start",
        "2024-01-01",
        "--end",
        "2024-04-01",
    ]
    assert cli.main([*args, "--concept-change-at", "2024-03-01", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (
        summary["change_at"] == CHANGE.isoformat()
        and summary["before"]["rows"] + summary["after"]["rows"] == 900
    )

    assert cli.main([*args, "--concept-change-at", "2024-03-01", "--concept-drift", "0.5", "--json"]) == 2
    assert (
        "--concept-change-at writes a folder"
        in json.loads(capsys.readouterr().out.strip().splitlines()[-1])["error"]
    )
