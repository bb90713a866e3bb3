"""The time split: oldest rows train, the next ones validate, the newest test.

Rows are ordered by event time, ties broken by key, so the same snapshot always
splits the same way and no split sees rows newer than the one after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from pipelines.featurize.preprocess import FeaturizeError
from pipelines.featurize.window import raw_columns
from pipelines.workspace.paths import SPLITS

if TYPE_CHECKING:
    from pipelines.common.config import FeaturizeConfig, Schema


@dataclass(frozen=True)
class Splits:
    """Raw rows of the three time-ordered splits."""

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame

    def items(self) -> list[tuple[str, pd.DataFrame]]:
        """``(name, frame)`` pairs in the order train, valid, test."""
        return [(name, getattr(self, name)) for name in SPLITS]


def split_by_time(events: pd.DataFrame, schema: Schema, cfg: FeaturizeConfig) -> Splits:
    """Oldest ``train_fraction`` → train, next ``valid_fraction`` → valid, the rest → test.

    Raises:
        FeaturizeError: the snapshot is empty or one of the splits would be.
    """
    if events.empty:
        raise FeaturizeError("the snapshot has 0 rows; expected events to split (run snapshot first)")
    ordered = events[raw_columns(schema)].sort_values([schema.event_time, schema.key], kind="stable")
    ordered = ordered.reset_index(drop=True)
    n = len(ordered)
    n_train = int(n * cfg.train_fraction)
    n_valid = int(n * cfg.valid_fraction)
    bounds = {"train": (0, n_train), "valid": (n_train, n_train + n_valid), "test": (n_train + n_valid, n)}
    for name, (start, stop) in bounds.items():
        if stop <= start:
            raise FeaturizeError(
                f"the {name} split is empty: {n} snapshot rows with train_fraction={cfg.train_fraction} "
                f"and valid_fraction={cfg.valid_fraction}; expected more rows or larger fractions"
            )
    parts = {name: ordered.iloc[a:b].reset_index(drop=True) for name, (a, b) in bounds.items()}
    return Splits(**parts)


def check_target(train: pd.DataFrame, target: str, task: str = "binary") -> None:
    """Raise :class:`FeaturizeError` unless the train split can teach the task: both classes of a
    binary target, two classes or more of a multiclass one, two values or more of a number."""
    if task != "binary":
        distinct = train[target].nunique(dropna=True)
        if distinct < 2:
            what = "classes" if task == "multiclass" else "distinct values"
            raise FeaturizeError(
                f"target {target!r} has {distinct} {what} in all {len(train)} train rows; "
                f"expected at least 2 for task {task} (widen the snapshot window)"
            )
        return
    counts = train[target].astype("int64").value_counts().to_dict()
    if len(counts) < 2:
        only = next(iter(counts), "none")
        raise FeaturizeError(
            f"target {target!r} has a single class ({only}) in all {len(train)} train rows; "
            f"expected both 0 and 1 (widen the snapshot window)"
        )
