"""The score section: defaults, and a bad value named with the key, the value and what was expected."""

from __future__ import annotations

import pytest

from pipelines.common.config import ParamsError, parse_params
from tests.support.data import CHURN_SCHEMA


def test_defaults_publish_nothing(demo_params):
    assert demo_params.score.publish_topic is None and demo_params.score.min_day_rows == 100
    assert demo_params.score.batch_rows == 20_000


@pytest.mark.parametrize(
    ("score", "fragments"),
    [
        ({"publish_topic": "bad topic!"}, ["score.publish_topic", "'bad topic!'", "pattern"]),
        ({"min_day_rows": 0}, ["score.min_day_rows", "0", "greater than or equal to 1"]),
        ({"batch_rows": 0}, ["score.batch_rows", "0", "greater than or equal to 1"]),
        ({"batch_rows": "many"}, ["score.batch_rows", "'many'", "integer"]),
        ({"min_rows": 5}, ["score.min_rows", "unknown key"]),
    ],
)
def test_a_bad_score_value_is_named(score, fragments):
    with pytest.raises(ParamsError) as err:
        parse_params({"schema": CHURN_SCHEMA, "score": score})
    assert all(f in str(err.value) for f in fragments), str(err.value)
