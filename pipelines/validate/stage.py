"""Validate: the gate between landed batches and training data.

Every landed batch is checked by a Great Expectations (GX Core 1.x) suite that
is generated from the schema in ``params.yaml``: no column is named here. A
batch that passes is copied to ``validated/``; one that fails gets a
``rejected/`` manifest that names the failed expectations with examples, and
never reaches training. Either way the GX result is kept as JSON and as Data
Docs HTML under ``reports/validation/``. Landing data is never modified.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import great_expectations as gx  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from fsspec.implementations.local import LocalFileSystem  # noqa: E402
from great_expectations.core.run_identifier import RunIdentifier  # noqa: E402
from great_expectations.data_context.types.base import (  # noqa: E402
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
from great_expectations.exceptions import ExpectationNotFoundError  # noqa: E402
from great_expectations.expectations.expectation import Expectation  # noqa: E402
from great_expectations.expectations.registry import get_expectation_impl  # noqa: E402

from pipelines.common.config import Column, Params, ParamsError, Schema, ValidateConfig  # noqa: E402
from pipelines.common.errors import RejectedError  # noqa: E402
from pipelines.common.lake import MANIFEST, Lake  # noqa: E402
from pipelines.common.settings import Settings  # noqa: E402

PART = "part-00000.parquet"
DOCS_SITE = "flywheel"
MAX_EXAMPLES = 10
RESULT_FORMAT = "SUMMARY"
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


class ValidationFailed(RejectedError):
    """At least one landed batch failed the validation suite."""

    def __init__(self, message: str, summary: dict | None = None) -> None:
        super().__init__(message)
        self.summary = summary or {}

    @classmethod
    def from_summary(cls, summary: dict) -> ValidationFailed:
        """The error for a ``run()`` summary: each failed partition with its failed expectations."""
        return cls(describe_rejections(summary), summary)


class ExpectationsFileError(ParamsError):
    """The ``validate.extra_expectations`` file is missing or holds an invalid entry."""


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
    failures: list[dict]
    result: dict
    docs_index: str | None = None

    def to_json(self) -> dict:
        """The outcome as a JSON-able dict."""
        return asdict(self)


# -- the suite: a pure function of the schema ------------------------------------------------


def build_suite(schema: Schema, cfg: ValidateConfig, extra: list[dict] | None = None) -> gx.ExpectationSuite:
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
    target = schema.target
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


def load_extra_expectations(path: str | None, base_dir: Path) -> list[dict]:
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


# -- running the suite -----------------------------------------------------------------------


def validate_frame(
    frame: pd.DataFrame,
    schema: Schema,
    cfg: ValidateConfig,
    extra: list[dict] | None = None,
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
    actions = [docs] if docs_dir else []
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
    return _outcome(result.to_json_dict(), _docs_index(docs_dir))


def _context_config(docs_dir: str | None) -> DataContextConfig:
    """In-memory stores, no analytics, no progress bars, and at most one local docs site."""
    sites: dict[str, dict] = {}
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


def _outcome(result: dict, docs_index: str | None) -> ValidationOutcome:
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


def _failure(result: dict) -> dict:
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


def _exception_message(info: dict) -> str | None:
    """GX reports errors either flat or keyed by metric; return the first message."""
    if info.get("raised_exception"):
        return info.get("exception_message")
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return value.get("exception_message")
    return None


def describe_failure(failure: dict) -> str:
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


def describe_rejections(summary: dict) -> str:
    """A readable message for the partitions of a ``run()`` summary that failed."""
    lines = ["validation rejected a batch; it will not reach training:"]
    for part in summary.get("partitions", []):
        if part["verdict"] == "fail":
            lines.append(f"  {part['partition']} ({part['rows']} rows), report {part.get('docs_index')}")
            lines += [f"    - {failure}" for failure in part["failed_expectations"]]
    return "\n".join(lines)


# -- the I/O edge ----------------------------------------------------------------------------


def run(params: Params, settings: Settings, source: str | None = None) -> dict:
    """Validate every landed partition that has no validated or rejected partition yet.

    Args:
        params: The loaded params (schema and ``validate`` section).
        settings: Where the lake and the params file are.
        source: Only partitions of this source (default: all).

    Returns:
        A JSON-able summary: overall verdict, one entry per partition, row counts.
    """
    lake = Lake(settings.lake_root(params))
    extra = load_extra_expectations(params.validation.extra_expectations, settings.params_path.parent)
    build_suite(params.schema, params.validation, extra)  # a bad extras file fails before any I/O
    known = KeyIndex.of_validated(lake, params.schema.key)
    reports = [
        validate_partition(lake, landing, params.schema, params.validation, extra, known)
        for landing in pending_partitions(lake, source)
    ]
    return summarize(reports)


class KeyIndex:
    """The event keys already in the validated tier, so that each event enters it exactly once.

    At-least-once sources (a Kafka run that crashed after landing but before
    committing its offsets) land some events again in a later partition; those
    copies are dropped on the way to the validated tier.
    """

    def __init__(self, arrays: list[pa.Array] | None = None) -> None:
        self._arrays = list(arrays or [])

    @classmethod
    def of_validated(cls, lake: Lake, key: str) -> KeyIndex:
        """The keys of every complete validated partition (only the key column is read)."""
        arrays = []
        for partition in lake.complete_partitions("validated"):
            for path in lake.part_files(partition):
                with lake.fs.open(path, "rb") as fh:
                    arrays.append(
                        pq.read_table(fh, columns=[key]).column(key).combine_chunks().cast(pa.string())
                    )
        return cls(arrays)

    def seen(self, keys: pd.Series) -> np.ndarray:
        """A mask of the keys already in the index."""
        if not self._arrays or keys.empty:
            return np.zeros(len(keys), dtype=bool)
        known = pa.concat_arrays(self._arrays)
        return pc.is_in(pa.array(keys, type=pa.string()), value_set=known).to_numpy(zero_copy_only=False)

    def add(self, keys: pd.Series) -> None:
        self._arrays.append(pa.array(keys, type=pa.string()))


def pending_partitions(lake: Lake, source: str | None = None) -> list[str]:
    """Complete landing partitions with neither a validated nor a rejected partition."""
    done = {
        _suffix(lake, p, tier)
        for tier in ("validated", "rejected")
        for p in lake.complete_partitions(tier, source)
    }
    return [p for p in lake.complete_partitions("landing", source) if _suffix(lake, p, "landing") not in done]


def _suffix(lake: Lake, partition: str, tier: str) -> str:
    """``source=<src>/run=<run>`` of a partition path in ``tier``."""
    return partition[len(lake.path(tier)) + 1 :]


def validate_partition(
    lake: Lake,
    landing: str,
    schema: Schema,
    cfg: ValidateConfig,
    extra: list[dict] | None = None,
    known: KeyIndex | None = None,
) -> dict:
    """Validate one landed partition and write its report and its validated or rejected partition.

    ``known`` holds the keys already validated (default: read from the lake); a
    passing batch adds its new keys to it.
    """
    suffix = _suffix(lake, landing, "landing")
    for tier in ("validated", "rejected"):
        lake.reset_partition(lake.path(tier, suffix))  # leftovers of a crashed attempt, never complete ones
    frame = lake.read_partition(landing)
    report_dir = lake.path("reports", "validation", suffix)
    lake.reset_partition(report_dir)
    outcome = _validate_with_docs(lake, frame, schema, cfg, extra, f"{report_dir}/data_docs", suffix)
    result_path = f"{report_dir}/result.json"
    lake.write_json(result_path, outcome.to_json())
    record = {
        "landing": landing,
        "result_path": result_path,
        "docs_index": outcome.docs_index,
        "gx_success": outcome.success,
        "statistics": outcome.statistics,
    }
    if outcome.success:
        known = known if known is not None else KeyIndex.of_validated(lake, schema.key)
        return _write_validated(lake, frame, schema, lake.path("validated", suffix), record, known)
    return _write_rejected(lake, frame, outcome, lake.path("rejected", suffix), record)


def _validate_with_docs(
    lake: Lake,
    frame: pd.DataFrame,
    schema: Schema,
    cfg: ValidateConfig,
    extra: list[dict] | None,
    docs_dir: str,
    run_name: str,
) -> ValidationOutcome:
    """Run the suite; Data Docs go straight to a local lake, or via a tempdir to a remote one."""
    if isinstance(lake.fs, LocalFileSystem):
        return validate_frame(frame, schema, cfg, extra, docs_dir=docs_dir, run_name=run_name)
    with tempfile.TemporaryDirectory() as tmp:
        outcome = validate_frame(frame, schema, cfg, extra, docs_dir=tmp, run_name=run_name)
        lake.fs.put(f"{tmp}/", docs_dir, recursive=True)
    return replace(outcome, docs_index=f"{docs_dir}/index.html" if outcome.docs_index else None)


def _write_validated(
    lake: Lake, frame: pd.DataFrame, schema: Schema, partition: str, record: dict, known: KeyIndex
) -> dict:
    """The batch, each key once (the first copy) and only keys not validated before, then its manifest, last."""
    unique = frame.drop_duplicates(subset=schema.key, keep="first")
    again = known.seen(unique[schema.key])
    validated = unique[~again]
    lake.write_table(f"{partition}/{PART}", pa.Table.from_pandas(validated, preserve_index=False))
    known.add(validated[schema.key])
    manifest = {
        **record,
        "rows": len(validated),
        "duplicates_dropped": len(frame) - len(validated),
        "already_validated": int(again.sum()),
        "written_at": _now(),
    }
    lake.write_json(f"{partition}/{MANIFEST}", manifest)
    return _partition_summary("pass", partition, manifest, [])


def _write_rejected(
    lake: Lake, frame: pd.DataFrame, outcome: ValidationOutcome, partition: str, record: dict
) -> dict:
    """Only a manifest: the failed expectations with examples; the data stays in landing."""
    described = [describe_failure(f) for f in outcome.failures]
    manifest = {
        **record,
        "rows": len(frame),
        "failures": outcome.failures,
        "failed_expectations": described,
        "written_at": _now(),
    }
    lake.write_json(f"{partition}/{MANIFEST}", manifest)
    return _partition_summary("fail", partition, manifest, described)


def _partition_summary(verdict: str, output: str, manifest: dict, described: list[str]) -> dict:
    return {
        "partition": manifest["landing"],
        "verdict": verdict,
        "rows": manifest["rows"],
        "failed_expectations": described,
        "result_path": manifest["result_path"],
        "docs_index": manifest["docs_index"],
        "output": output,
    }


def summarize(reports: list[dict]) -> dict:
    """The run's verdict: ``fail`` if any partition failed, ``nothing_to_validate`` if none was pending."""
    if not reports:
        verdict = "nothing_to_validate"
    else:
        verdict = "fail" if any(r["verdict"] == "fail" for r in reports) else "pass"
    return {
        "verdict": verdict,
        "partitions": reports,
        "validated_rows": sum(r["rows"] for r in reports if r["verdict"] == "pass"),
        "rejected_rows": sum(r["rows"] for r in reports if r["verdict"] == "fail"),
    }


def _now() -> str:
    return datetime.now(UTC).isoformat()
