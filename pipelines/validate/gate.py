"""The gate's verdict on one batch: run the suite, say what failed with examples, in words a person reads.

:func:`validate_frame` runs the suite of :mod:`.suite` on one frame in an
ephemeral GX context (in-memory stores, no analytics) and returns a
:class:`ValidationOutcome`; Data Docs HTML is rendered only when asked for.
:func:`describe_failure` and :func:`describe_rejections` turn failures into the
lines of a report or an error; :class:`ValidationFailed` is that error.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import great_expectations as gx
import pandas as pd
from great_expectations.checkpoint import ValidationAction
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)

from pipelines.common.config import Schema, ValidateConfig
from pipelines.common.errors import RejectedError
from pipelines.validate.suite import build_suite

DOCS_SITE = "flywheel"
MAX_EXAMPLES = 10
RESULT_FORMAT: Final = "SUMMARY"


@dataclass(frozen=True)
class ValidationOutcome:
    """What one run of the suite on one batch found.

    Attributes:
        success: Whether every expectation passed.
        statistics: GX counts: evaluated, successful and unsuccessful expectations.
        failures: One dict per failed expectation (type, column, kwargs, what was
            observed and up to ten unexpected example values).
        result: The full GX validation result as JSON.
        docs_index: The Data Docs ``index.html``, when docs were rendered.
    """

    success: bool
    statistics: dict[str, Any]
    failures: list[dict[str, Any]]
    result: dict[str, Any]
    docs_index: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The outcome as a JSON-able dict."""
        return asdict(self)


def validate_frame(
    frame: pd.DataFrame,
    schema: Schema,
    cfg: ValidateConfig,
    extra: list[dict[str, Any]] | None = None,
    docs_dir: str | None = None,
    run_name: str | None = None,
) -> ValidationOutcome:
    """Run the schema's suite on one batch; render Data Docs into ``docs_dir`` when given.

    Args:
        frame: A landed, typed batch.
        schema: The dataset schema.
        cfg: The ``validate`` section.
        extra: Extra expectation entries (see :func:`build_suite`).
        docs_dir: A local folder for the Data Docs site of this validation.
        run_name: A label for this validation in the docs (e.g. the partition).
    """
    _quiet_gx()
    context = gx.get_context(mode="ephemeral", project_config=_context_config(docs_dir))
    batch = (
        context.data_sources.add_pandas("landed")
        .add_dataframe_asset("batch")
        .add_batch_definition_whole_dataframe("whole batch")
    )
    suite = context.suites.add(build_suite(schema, cfg, extra))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{schema.name} gate", data=batch, suite=suite)
    )
    docs = gx.checkpoint.UpdateDataDocsAction(name="data docs", site_names=[DOCS_SITE])
    actions: list[ValidationAction] = [docs] if docs_dir else []
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name=f"{schema.name} checkpoint",
            validation_definitions=[definition],
            actions=actions,
            result_format=RESULT_FORMAT,
        )
    )
    run_id = RunIdentifier(run_name=run_name.replace("/", "__") if run_name else None)  # GX keys forbid "/"
    run = checkpoint.run(batch_parameters={"dataframe": frame}, run_id=run_id)
    (result,) = run.run_results.values()
    return _outcome(result.to_json_dict(), _docs_index(docs_dir))  # type: ignore[no-untyped-call]


def _context_config(docs_dir: str | None) -> DataContextConfig:
    """In-memory stores, no analytics, no progress bars, and at most one local docs site."""
    sites: dict[str, dict[str, Any]] = {}
    if docs_dir:
        sites[DOCS_SITE] = {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": docs_dir},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    return DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        data_docs_sites=sites,
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )


def _quiet_gx() -> None:
    logging.getLogger("great_expectations").setLevel(logging.WARNING)


def _docs_index(docs_dir: str | None) -> str | None:
    if not docs_dir:
        return None
    index = Path(docs_dir) / "index.html"
    return str(index) if index.exists() else None


def _plain(obj: Any) -> Any:
    """Plain JSON types: GX leaves numpy scalars (``np.float64(0.1)``) in its "JSON" dicts."""
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def _outcome(result: dict[str, Any], docs_index: str | None) -> ValidationOutcome:
    result = _plain(result)
    failures = [_failure(r) for r in result["results"] if not r["success"]]
    failures.sort(key=lambda f: f["exception"] is not None)  # what was observed first, errors after
    return ValidationOutcome(
        success=bool(result["success"]),
        statistics=result["statistics"],
        failures=failures,
        result=result,
        docs_index=docs_index,
    )


def _failure(result: dict[str, Any]) -> dict[str, Any]:
    """The parts of one failed expectation's result a person needs."""
    config = result["expectation_config"]
    kwargs = {k: v for k, v in config["kwargs"].items() if k != "batch_id"}
    found = result.get("result") or {}
    info = result.get("exception_info") or {}
    return {
        "expectation": config["type"],
        "column": kwargs.get("column"),
        "kwargs": kwargs,
        "observed_value": found.get("observed_value"),
        "element_count": found.get("element_count"),
        "unexpected_count": found.get("unexpected_count"),
        "unexpected_percent": found.get("unexpected_percent"),
        "partial_unexpected_list": (found.get("partial_unexpected_list") or [])[:MAX_EXAMPLES],
        "exception": _exception_message(info),
    }


def _exception_message(info: dict[str, Any]) -> str | None:
    """GX reports errors either flat or keyed by metric; return the first message."""
    if info.get("raised_exception"):
        return info.get("exception_message")
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return value.get("exception_message")
    return None


def describe_failure(failure: dict[str, Any]) -> str:
    """One line for a failed expectation: ``type(column) unexpected 35.0%: examples [...]``."""
    name = failure["expectation"] + (f"({failure['column']})" if failure.get("column") else "")
    if failure["expectation"] == "expect_column_to_exist":
        return f"{name}: the batch has no such column"
    if failure.get("exception"):
        return f"{name} could not run: {failure['exception']}"
    if failure.get("unexpected_percent") is not None:
        return (
            f"{name} unexpected {failure['unexpected_percent']:.1f}%"
            f" ({failure['unexpected_count']} rows): examples {failure['partial_unexpected_list']}"
        )
    expected = {k: v for k, v in failure["kwargs"].items() if k != "column"}
    return f"{name} observed {failure.get('observed_value')!r}, expected {expected}"


def describe_rejections(summary: dict[str, Any]) -> str:
    """A readable message for the partitions of a ``run()`` summary that failed."""
    lines = ["validation rejected a batch; it will not reach training:"]
    for part in summary.get("partitions", []):
        if part["verdict"] == "fail":
            lines.append(f"  {part['partition']} ({part['rows']} rows), report {part.get('docs_index')}")
            lines += [f"    - {failure}" for failure in part["failed_expectations"]]
    return "\n".join(lines)


class ValidationFailed(RejectedError):
    """At least one landed batch failed the validation suite."""

    def __init__(self, message: str, summary: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.summary = summary or {}

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> ValidationFailed:
        """The error for a ``run()`` summary: each failed partition with its failed expectations."""
        return cls(describe_rejections(summary), summary)
