"""An online request's records checked against the schema: the typed frame the model scores, or why not.

The pure core of ``/predict``. Each record is a JSON object carrying the schema's feature columns;
the event key may come along (it is echoed back), the event time and the target are ignored, any other
field is refused. A rule broken anywhere refuses the whole request with :class:`InvalidRecord`, which
names the record, the field, the value and the rule: nothing is scored half-way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from pipelines.common.config import Column, Schema
from pipelines.scoring.serve.errors import InvalidRecord

UnknownCategory = Literal["reject", "score"]
Check = Callable[[int, Any], Any]


def _range_rule(column: Column) -> str:
    if column.min is not None and column.max is not None:
        return f"between {column.min:g} and {column.max:g}"
    if column.min is not None:
        return f">= {column.min:g}"
    return f"<= {column.max:g}" if column.max is not None else ""


def _number_check(column: Column) -> Check:
    integer, bounds = column.type == "int", _range_rule(column)
    expected = ("an integer" if integer else "a finite number") + (f" {bounds}" if bounds else "")

    def check(row: int, value: Any) -> Any:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if ok and integer and not float(value).is_integer():
            ok = False
        if ok and column.min is not None and value < column.min:
            ok = False
        if ok and column.max is not None and value > column.max:
            ok = False
        if not ok:
            raise InvalidRecord(row, column.name, value, f"expected {expected}")
        return value

    return check


def _category_check(column: Column, unknown: UnknownCategory) -> Check:
    known = frozenset(column.categories or ())
    listed = ", ".join(column.categories or ())

    def check(row: int, value: Any) -> Any:
        if not isinstance(value, str):
            raise InvalidRecord(row, column.name, value, f"expected a string category, one of: {listed}")
        if value not in known and unknown == "reject":
            raise InvalidRecord(
                row,
                column.name,
                value,
                f"unknown category; expected one of: {listed} (serve.unknown_category: reject)",
            )
        return value

    return check


class RecordChecker:
    """The checks of one schema, built once and applied to every request."""

    def __init__(self, schema: Schema, unknown_category: UnknownCategory, max_rows: int) -> None:
        self.schema, self.max_rows = schema, max_rows
        self.columns = schema.columns
        self.checks = {
            c.name: _category_check(c, unknown_category) if c.type == "category" else _number_check(c)
            for c in schema.columns
        }
        self.passed = frozenset({schema.key, schema.event_time, schema.target})
        self.allowed = frozenset(self.checks) | self.passed

    def records(self, payload: Any) -> list[Any]:
        """The list of records of a body: ``{"records": [...]}`` or a bare list."""
        records = payload.get("records") if isinstance(payload, dict) else payload
        if isinstance(payload, dict) and set(payload) != {"records"}:
            extra = sorted(set(payload) - {"records"})
            raise InvalidRecord(None, extra[0] if extra else "records", None, _BODY_RULE)
        if not isinstance(records, list):
            raise InvalidRecord(None, "records", _type_name(records), _BODY_RULE)
        if not records:
            raise InvalidRecord(None, "records", [], "expected at least one record")
        if len(records) > self.max_rows:
            raise InvalidRecord(
                None, "records", len(records), f"expected at most {self.max_rows} records (serve.max_rows)"
            )
        return records

    def frame(self, payload: Any) -> tuple[pd.DataFrame, list[Any] | None]:
        """The feature frame of a request body, and the records' keys (None when none carried one)."""
        records = self.records(payload)
        values: dict[str, list[Any]] = {c.name: [None] * len(records) for c in self.columns}
        keys: list[Any] = [None] * len(records)
        for row, record in enumerate(records):
            self._record(row, record, values, keys)
        frame = pd.DataFrame(
            {c.name: _column(values[c.name], c) for c in self.columns}, index=pd.RangeIndex(len(records))
        )
        return frame, keys if any(k is not None for k in keys) else None

    def _record(self, row: int, record: Any, values: dict[str, list[Any]], keys: list[Any]) -> None:
        if not isinstance(record, dict):
            raise InvalidRecord(row, None, _type_name(record), "expected a JSON object of the schema fields")
        unknown = record.keys() - self.allowed
        if unknown:
            field = sorted(unknown)[0]
            raise InvalidRecord(
                row, field, record[field], f"unknown field; expected only {sorted(self.checks)}"
            )
        for column in self.columns:
            value = record.get(column.name)
            if value is None:
                if column.required:
                    rule = f"missing; expected a {column.type} (a required column)"
                    raise InvalidRecord(row, column.name, None, rule)
                continue
            values[column.name][row] = self.checks[column.name](row, value)
        keys[row] = record.get(self.schema.key)


_BODY_RULE = 'expected a JSON body {"records": [{...}, ...]} or a list of records'


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _column(values: Sequence[Any], column: Column) -> Any:
    """The raw column as the lake holds it: float64, nullable Int64, or object strings."""
    if column.type == "float":
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    if column.type == "int":
        return pd.array([None if v is None else int(v) for v in values], dtype="Int64")
    return np.array(values, dtype=object)
