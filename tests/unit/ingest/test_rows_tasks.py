"""Ingest reads the target per task: a number for regression, a class label (text or whole number) for
multiclass; what does not fit is quarantined with a reason naming the field and the value."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from pipelines.common.config import load_params
from pipelines.ingest import rows as records
from tests.support.install import ROOT

NOW = pd.Timestamp("2026-01-01T00:00:00Z")


def coerce(task: str, targets: list) -> tuple[pd.DataFrame, pd.Series]:
    folder = {"regression": "delivery-times", "multiclass": "support-tickets"}[task]
    params = load_params(ROOT / "examples" / folder / "params.yaml")
    schema = params.schema
    base = {
        "regression": {"distance_km": 2.5, "items": 2, "cuisine": "thai", "hour_of_day": 12, "rain_mm": 0.0},
        "multiclass": {
            "message_length": 40,
            "channel": "web",
            "product": "pro",
            "account_age_days": 3,
            "error_count": 0,
        },
    }[task]
    raw = pd.DataFrame(
        [
            {schema.key: f"k{i}", schema.event_time: "2025-12-01T00:00:00Z", **base, schema.target: t}
            for i, t in enumerate(targets)
        ]
    )
    return records.coerce(raw, schema, params.ingest, NOW)


def test_a_regression_target_is_a_number():
    typed, reasons = coerce("regression", [31.5, "12", 7, "late", None])
    assert typed["delivery_minutes"].tolist() == [31.5, 12.0, 7.0]
    assert typed["delivery_minutes"].dtype == "float64"
    assert "'delivery_minutes' = 'late'" in reasons.iloc[0] and "missing required field" in reasons.iloc[1]


def test_a_multiclass_target_is_a_label():
    typed, reasons = coerce("multiclass", ["billing", 2, 3.0, True, None])
    assert typed["queue"].tolist() == ["billing", "2", "3"]
    assert "expected a class label" in reasons.iloc[0] and "missing required field" in reasons.iloc[1]


@pytest.mark.parametrize(
    ("folder", "kind"), [("delivery-times", pa.float64()), ("support-tickets", pa.string())]
)
def test_the_landed_target_type_follows_the_task(folder, kind):
    schema = load_params(ROOT / "examples" / folder / "params.yaml").schema
    assert records.arrow_schema(schema).field(schema.target).type == kind


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_a_task_demo_s_json_lines_decode_in_one_arrow_call(task):
    from pipelines.demo.variants import task_messages

    folder = {"regression": "delivery-times", "multiclass": "support-tickets"}[task]
    params = load_params(ROOT / "examples" / folder / "params.yaml")
    _, values, _ = task_messages(task, 50)

    raw = records.frame_from_json_values(values, params.schema, params.ingest.max_record_bytes)
    assert raw is not None
    typed, reasons = records.coerce(raw, params.schema, params.ingest, pd.Timestamp("2027-01-01T00:00:00Z"))
    assert len(typed) == 50 and reasons.empty
