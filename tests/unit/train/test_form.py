"""A trigger form becomes parameter overrides; a forced promotion without a reason is refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipelines.common.config import ParamsError
from pipelines.train.form import training_overrides

AS_OF = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ({}, {"snapshot.as_of": AS_OF.isoformat()}),
        ({"epochs": 5, "window_days": None}, {"snapshot.as_of": AS_OF.isoformat(), "train.epochs": 5}),
        (
            {"window_days": 7, "epochs": ""},
            {"snapshot.as_of": AS_OF.isoformat(), "snapshot.window_days": 7, "snapshot.window": "sliding"},
        ),
        ({"learning_rate": 0.01}, {"snapshot.as_of": AS_OF.isoformat(), "train.learning_rate": 0.01}),
        ({"force_promote": True, "force_reason": "labels fixed"}, {"snapshot.as_of": AS_OF.isoformat()}),
    ],
)
def test_overrides(form, expected):
    assert training_overrides(form, AS_OF) == expected


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_force_without_reason_is_refused(reason):
    with pytest.raises(ParamsError, match="force_promote = true needs force_reason"):
        training_overrides({"force_promote": True, "force_reason": reason}, AS_OF)
