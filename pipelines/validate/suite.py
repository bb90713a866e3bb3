"""The validation suite: Great Expectations (GX Core 1.x) expectations generated from the schema.

No column is named here: every expectation is derived from the schema and the
``validate`` section of ``params.yaml``. A team adds its own checks as extra
expectations in a JSON file (``validate.extra_expectations``), each checked here
with an error that names the entry, the value and what was expected.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import great_expectations as gx
from great_expectations.exceptions import ExpectationNotFoundError
from great_expectations.expectations.expectation import Expectation
from great_expectations.expectations.registry import get_expectation_impl

from pipelines.common.config import Column, Schema, ValidateConfig
from pipelines.common.errors import ParamsError

# Fields every GX expectation has; an extra entry's kwargs are the other ones.
_GX_BASE_FIELDS = {
    "id",
    "meta",
    "notes",
    "result_format",
    "description",
    "catch_exceptions",
    "rendered_content",
    "severity",
    "windows",
    "batch_id",
}


class ExpectationsFileError(ParamsError):
    """The ``validate.extra_expectations`` file is missing or holds an invalid entry."""


def build_suite(
    schema: Schema, cfg: ValidateConfig, extra: list[dict[str, Any]] | None = None
) -> gx.ExpectationSuite:
    """The expectation suite for a landed batch of ``schema``, with ``cfg``'s thresholds.

    Args:
        schema: The dataset schema; every expectation is derived from it.
        cfg: The ``validate`` section: row floor, ``mostly``, null and target-rate bounds.
        extra: Extra expectations as ``{"type": ..., "kwargs": {...}}`` entries.

    Raises:
        ExpectationsFileError: An extra entry has an unknown type or bad kwargs.
    """
    expectations = [
        gx.expectations.ExpectTableRowCountToBeBetween(min_value=cfg.min_rows, max_value=None),
        *_existence_expectations(schema),
        *_key_expectations(schema, cfg),
        *_target_expectations(schema, cfg),
    ]
    for column in schema.columns:
        expectations += _column_expectations(column, cfg)
    expectations += [_extra_expectation(entry, i) for i, entry in enumerate(extra or [])]
    return gx.ExpectationSuite(
        name=schema.name,
        expectations=expectations,
        meta={"generated_from": f"schema {schema.name!r} in params"},
    )


def _existence_expectations(schema: Schema) -> list[Expectation]:
    names = [schema.key, schema.event_time, schema.target, *schema.feature_names]
    return [gx.expectations.ExpectColumnToExist(column=name) for name in names]


def _key_expectations(schema: Schema, cfg: ValidateConfig) -> list[Expectation]:
    # A few at-least-once duplicates are expected and dropped on the way to the validated tier.
    return [
        gx.expectations.ExpectColumnValuesToNotBeNull(column=schema.key),
        gx.expectations.ExpectColumnValuesToBeUnique(column=schema.key, mostly=cfg.mostly),
        gx.expectations.ExpectColumnValuesToNotBeNull(column=schema.event_time),
    ]


def _target_expectations(schema: Schema, cfg: ValidateConfig) -> list[Expectation]:
    """Per task: a 0/1 label with its rate in bounds; one of ``schema.classes``; a number in its range."""
    target = schema.target
    if schema.task == "multiclass":
        return [
            gx.expectations.ExpectColumnValuesToNotBeNull(column=target),
            gx.expectations.ExpectColumnValuesToBeInSet(column=target, value_set=list(schema.classes or ())),
        ]
    if schema.task == "regression":
        out: list[Expectation] = [gx.expectations.ExpectColumnValuesToNotBeNull(column=target)]
        if schema.target_min is not None or schema.target_max is not None:
            out.append(
                gx.expectations.ExpectColumnValuesToBeBetween(
                    column=target, min_value=schema.target_min, max_value=schema.target_max, mostly=cfg.mostly
                )
            )
        return out
    return [
        gx.expectations.ExpectColumnValuesToNotBeNull(column=target),
        gx.expectations.ExpectColumnValuesToBeInSet(column=target, value_set=[0, 1]),
        gx.expectations.ExpectColumnMeanToBeBetween(
            column=target, min_value=cfg.min_target_rate, max_value=cfg.max_target_rate
        ),
    ]


def _column_expectations(column: Column, cfg: ValidateConfig) -> list[Expectation]:
    """Null, range and category expectations of one feature column."""
    out: list[Expectation] = []
    if column.required:
        out.append(gx.expectations.ExpectColumnValuesToNotBeNull(column=column.name))
    elif cfg.max_null_fraction < 1:
        mostly = round(1 - cfg.max_null_fraction, 12)
        out.append(gx.expectations.ExpectColumnValuesToNotBeNull(column=column.name, mostly=mostly))
    if column.is_numeric and (column.min is not None or column.max is not None):
        out.append(
            gx.expectations.ExpectColumnValuesToBeBetween(
                column=column.name, min_value=column.min, max_value=column.max, mostly=cfg.mostly
            )
        )
    if column.categories:
        out.append(
            gx.expectations.ExpectColumnValuesToBeInSet(
                column=column.name, value_set=list(column.categories), mostly=cfg.mostly
            )
        )
    return out


def _extra_expectation(entry: Any, index: int) -> Expectation:
    """One GX expectation from an ``{"type", "kwargs"[, "meta"]}`` entry, or a clear error."""
    where = f"extra expectation [{index}]"
    if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
        raise ExpectationsFileError(
            f"{where} = {entry!r}: expected an object like "
            '{"type": "expect_column_values_to_be_between", "kwargs": {"column": ..., ...}}'
        )
    unknown = sorted(set(entry) - {"type", "kwargs", "meta"})
    kwargs = entry.get("kwargs", {})
    if unknown or not isinstance(kwargs, dict):
        raise ExpectationsFileError(
            f"{where} ({entry['type']}): expected keys 'type', 'kwargs' (an object) and optional 'meta'; "
            f"got {sorted(entry)} with kwargs {kwargs!r}"
        )
    try:
        cls = get_expectation_impl(entry["type"])
    except ExpectationNotFoundError:
        raise ExpectationsFileError(
            f"{where}: unknown expectation type {entry['type']!r}; expected a GX Core expectation "
            "type in snake case, such as 'expect_column_values_to_be_between'"
        ) from None
    try:
        return cls(**kwargs, meta=entry.get("meta"))
    except ValueError as exc:
        accepted = sorted(set(cls.__fields__) - _GX_BASE_FIELDS)
        raise ExpectationsFileError(
            f"{where} ({entry['type']}) has bad kwargs {kwargs!r}: {exc}; expected kwargs among {accepted}"
        ) from None


def load_extra_expectations(path: str | None, base_dir: Path) -> list[dict[str, Any]]:
    """Read the ``validate.extra_expectations`` JSON list (relative to the params folder).

    Raises:
        ExpectationsFileError: The file is missing, not JSON or not a list.
    """
    if not path:
        return []
    file = Path(path) if Path(path).is_absolute() else base_dir / path
    try:
        entries = json.loads(file.read_text())
    except FileNotFoundError:
        raise ExpectationsFileError(
            f"validate.extra_expectations = {path!r}: {file} not found; expected a JSON file"
        ) from None
    except json.JSONDecodeError as exc:
        raise ExpectationsFileError(f"validate.extra_expectations: {file} is not valid JSON: {exc}") from None
    if not isinstance(entries, list):
        raise ExpectationsFileError(
            f"validate.extra_expectations: {file} holds a {type(entries).__name__}; "
            'expected a JSON list of {"type": ..., "kwargs": {...}} objects'
        )
    return entries
