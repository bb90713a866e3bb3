"""The time split: oldest rows train, newest test, ties broken by key, only the schema's columns."""

from __future__ import annotations

import pandas as pd

from pipelines.featurize.split import split_by_time
from tests.support.data import churn_events


def test_split_is_time_ordered_with_the_configured_sizes(churn, churn_snapshot):
    shuffled = churn_snapshot.sample(frac=1.0, random_state=1)
    splits = split_by_time(shuffled, churn.schema, churn.featurize)

    assert [len(splits.train), len(splits.valid), len(splits.test)] == [280, 60, 60]
    assert splits.train.observed_at.max() <= splits.valid.observed_at.min()
    assert splits.valid.observed_at.max() <= splits.test.observed_at.min()
    joined = pd.concat([f for _, f in splits.items()], ignore_index=True)
    pd.testing.assert_frame_equal(joined, churn_snapshot)


def test_time_ties_are_broken_by_key(churn):
    events = churn_events(20)
    events["observed_at"] = events.observed_at.iloc[0]
    splits = split_by_time(events.iloc[::-1], churn.schema, churn.featurize)
    keys = pd.concat([f.customer_id for _, f in splits.items()]).tolist()
    assert keys == sorted(keys)


def test_split_keeps_only_the_schema_columns(churn, churn_snapshot):
    splits = split_by_time(churn_snapshot.assign(_origin="x.jsonl:1", extra=1), churn.schema, churn.featurize)
    assert list(splits.train.columns) == [
        "customer_id",
        "observed_at",
        "tenure",
        "plan",
        "support_calls",
        "churned",
    ]
