"""The validation gate: a GX suite generated from the schema, and the lake edge around it."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from pipelines.common.config import Params, Schema, load_params
from pipelines.common.lake import MANIFEST, Lake
from pipelines.common.settings import Settings
from pipelines.validate import stage as validate
from tests.support.data import sensor_frame, sensor_params
from tests.support.install import ROOT

REPO = ROOT


def schema_frame(schema: Schema, rows: int = 200) -> pd.DataFrame:
    """A clean batch for any schema: mid-range numbers, categories in turn, 10% positives."""
    data: dict = {
        schema.key: [f"k{i}" for i in range(rows)],
        schema.event_time: pd.date_range("2024-05-01", periods=rows, freq="min", tz="UTC"),
        schema.target: (np.arange(rows) % 10 == 0).astype("int8"),
    }
    for column in schema.columns:
        if column.categories:
            data[column.name] = [column.categories[i % len(column.categories)] for i in range(rows)]
        else:
            low = column.min if column.min is not None else 0
            high = column.max if column.max is not None else 1
            dtype = "float64" if column.type == "float" else "int64"
            data[column.name] = np.full(rows, (low + high) / 2, dtype=dtype)
    return pd.DataFrame(data)


def run_suite(frame: pd.DataFrame, params: Params | None = None, **kwargs) -> validate.ValidationOutcome:
    params = params or sensor_params()
    return validate.validate_frame(frame, params.schema, params.validation, **kwargs)


def failed(outcome: validate.ValidationOutcome) -> dict[tuple[str, str | None], dict]:
    return {(f["expectation"], f["column"]): f for f in outcome.failures}


# -- the suite ---------------------------------------------------------------------------------


def test_a_clean_batch_passes():
    outcome = run_suite(sensor_frame())

    assert outcome.success, [validate.describe_failure(f) for f in outcome.failures]
    assert outcome.failures == []
    assert outcome.statistics["unsuccessful_expectations"] == 0
    assert outcome.statistics["evaluated_expectations"] == len(build_sensor_suite().expectations)
    assert outcome.result["success"] is True
    json.dumps(outcome.to_json())  # the whole outcome is JSON-able


def build_sensor_suite():
    params = sensor_params()
    return validate.build_suite(params.schema, params.validation)


def test_suite_is_generated_from_the_schema():
    suite = build_sensor_suite()
    by_type: dict[str, set] = {}
    for expectation in suite.expectations:
        by_type.setdefault(expectation.expectation_type, set()).add(getattr(expectation, "column", None))

    assert suite.name == "sensor"
    assert by_type["expect_column_to_exist"] == {
        "reading_id",
        "read_at",
        "alarm",
        "temperature",
        "site",
        "reading_count",
    }
    assert by_type["expect_column_values_to_be_unique"] == {"reading_id"}
    assert by_type["expect_column_values_to_be_between"] == {"temperature", "reading_count"}
    assert by_type["expect_column_values_to_be_in_set"] == {"site", "alarm"}
    assert by_type["expect_column_mean_to_be_between"] == {"alarm"}
    assert by_type["expect_table_row_count_to_be_between"] == {None}
    not_null = "expect_column_values_to_not_be_null"
    optional = [
        e for e in suite.expectations if e.expectation_type == not_null and e.column == "reading_count"
    ]
    assert [e.mostly for e in optional] == [pytest.approx(0.95)]


def _set(column: str, value, share: float):
    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        rows = int(len(frame) * share)
        frame.loc[: rows - 1, column] = value
        return frame

    return mutate


FAILING = [
    # case id, how the clean batch is spoiled, (expectation, column) that must fail, an example value
    (
        "out of range above mostly",
        _set("temperature", -5.0, 0.35),
        ("expect_column_values_to_be_between", "temperature"),
        -5.0,
    ),
    ("category outside the set", _set("site", "z", 0.05), ("expect_column_values_to_be_in_set", "site"), "z"),
    (
        "optional column too often null",
        _set("reading_count", pd.NA, 0.10),
        ("expect_column_values_to_not_be_null", "reading_count"),
        None,
    ),
    (
        "required column null",
        _set("temperature", np.nan, 0.005),
        ("expect_column_values_to_not_be_null", "temperature"),
        None,
    ),
    (
        "key null",
        _set("reading_id", None, 0.005),
        ("expect_column_values_to_not_be_null", "reading_id"),
        None,
    ),
    (
        "duplicate keys",
        _set("reading_id", "dup", 0.02),
        ("expect_column_values_to_be_unique", "reading_id"),
        "dup",
    ),
    ("too few rows", lambda f: f.head(10), ("expect_table_row_count_to_be_between", None), None),
    ("target rate above max", _set("alarm", 1, 0.8), ("expect_column_mean_to_be_between", "alarm"), None),
    ("target not binary", _set("alarm", 2, 0.005), ("expect_column_values_to_be_in_set", "alarm"), 2),
    ("missing column", lambda f: f.drop(columns=["site"]), ("expect_column_to_exist", "site"), None),
]


@pytest.mark.parametrize(
    ("spoil", "expected", "example"), [c[1:] for c in FAILING], ids=[c[0] for c in FAILING]
)
def test_a_spoiled_batch_fails_naming_the_expectation(spoil, expected, example):
    outcome = run_suite(spoil(sensor_frame()))

    assert not outcome.success
    assert expected in failed(outcome), [validate.describe_failure(f) for f in outcome.failures]
    failure = failed(outcome)[expected]
    described = validate.describe_failure(failure)
    assert described.startswith(expected[0] + (f"({expected[1]})" if expected[1] else ""))
    if example is not None:
        assert example in failure["partial_unexpected_list"]
        assert 0 < len(failure["partial_unexpected_list"]) <= validate.MAX_EXAMPLES
        assert repr(example) in described


@pytest.mark.parametrize(
    ("spoil", "case"),
    [
        (_set("temperature", 150.0, 0.005), "out of range below 1 - mostly"),
        (_set("site", "z", 0.005), "unknown category below 1 - mostly"),
        (_set("reading_count", pd.NA, 0.04), "optional nulls below max_null_fraction"),
    ],
)
def test_a_few_bad_values_within_the_tolerance_pass(spoil, case):
    outcome = run_suite(spoil(sensor_frame()))

    assert outcome.success, (case, [validate.describe_failure(f) for f in outcome.failures])


def test_out_of_range_failure_says_share_and_examples():
    outcome = run_suite(_set("temperature", -5.0, 0.35)(sensor_frame()))
    failure = failed(outcome)[("expect_column_values_to_be_between", "temperature")]

    assert failure["unexpected_count"] == 70
    assert failure["kwargs"] == {
        "column": "temperature",
        "min_value": 0.0,
        "max_value": 100.0,
        "mostly": 0.99,
    }
    assert validate.describe_failure(failure).startswith(
        "expect_column_values_to_be_between(temperature) unexpected 35.0% (70 rows): examples [-5.0,"
    )


def test_target_rate_failure_reports_the_observed_mean():
    outcome = run_suite(sensor_frame(), sensor_params(min_target_rate=0.3, max_target_rate=0.6))
    failure = failed(outcome)[("expect_column_mean_to_be_between", "alarm")]

    assert failure["observed_value"] == pytest.approx(0.1)
    assert "observed 0.1" in validate.describe_failure(failure)


def test_repo_params_suite_passes_a_clean_batch_and_catches_an_out_of_range_value():
    params = load_params(REPO / "params.yaml")
    frame = schema_frame(params.schema)
    numeric = params.schema.numeric[0]

    assert run_suite(frame, params).success
    frame.loc[: len(frame) // 2, numeric.name] = (numeric.max or 0) + 1
    assert ("expect_column_values_to_be_between", numeric.name) in failed(run_suite(frame, params))


# -- extra expectations ------------------------------------------------------------------------


def test_extra_expectations_from_a_file_are_applied(tmp_path):
    (tmp_path / "checks").mkdir()
    (tmp_path / "checks" / "extra.json").write_text(
        json.dumps(
            [
                {
                    "type": "expect_column_values_to_be_between",
                    "kwargs": {"column": "temperature", "min_value": 0, "max_value": 50},
                },
                {
                    "type": "expect_column_max_to_be_between",
                    "kwargs": {"column": "reading_count", "max_value": 5000},
                },
            ]
        )
    )
    extra = validate.load_extra_expectations("checks/extra.json", base_dir=tmp_path)
    outcome = run_suite(sensor_frame(), extra=extra)

    between = [f for f in outcome.failures if f["expectation"] == "expect_column_values_to_be_between"]
    assert [f["kwargs"]["max_value"] for f in between] == [50]
    assert outcome.statistics["evaluated_expectations"] == len(build_sensor_suite().expectations) + 2


BAD_EXTRAS = [
    (
        "unknown type",
        [{"type": "expect_column_to_be_sparkly", "kwargs": {"column": "site"}}],
        ["[0]", "expect_column_to_be_sparkly", "expect_column_values_to_be_between"],
    ),
    (
        "bad kwargs",
        [{"type": "expect_column_values_to_be_between", "kwargs": {"column": "site"}}],
        ["[0]", "min_value and max_value cannot both be None", "expected kwargs among"],
    ),
    (
        "misspelt kwarg in a later entry",
        [
            {"type": "expect_column_to_exist", "kwargs": {"column": "site"}},
            {"type": "expect_column_values_to_be_between", "kwargs": {"colum": "site", "max_value": 1}},
        ],
        ["[1]", "colum", "extra fields not permitted", "'column'"],
    ),
    ("not an object", ["expect_column_values_to_be_between"], ["[0]", '"type"', '"kwargs"']),
    (
        "kwargs not an object",
        [{"type": "expect_column_to_exist", "kwargs": ["site"]}],
        ["[0]", "'kwargs' (an object)"],
    ),
]


@pytest.mark.parametrize(("entries", "words"), [c[1:] for c in BAD_EXTRAS], ids=[c[0] for c in BAD_EXTRAS])
def test_a_bad_extra_expectation_is_a_clear_error(entries, words):
    params = sensor_params()
    with pytest.raises(validate.ExpectationsFileError) as error:
        validate.build_suite(params.schema, params.validation, entries)

    for word in words:
        assert word in str(error.value)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, ["not found", "expected a JSON file"]),
        ("{not json", ["not valid JSON"]),
        ('{"type": "expect_column_to_exist"}', ["holds a dict", "expected a JSON list"]),
    ],
)
def test_a_bad_extra_expectations_file_is_a_clear_error(tmp_path, content, words):
    if content is not None:
        (tmp_path / "extra.json").write_text(content)
    with pytest.raises(validate.ExpectationsFileError) as error:
        validate.load_extra_expectations("extra.json", base_dir=tmp_path)

    for word in words:
        assert word in str(error.value)


# -- Data Docs ---------------------------------------------------------------------------------


def test_data_docs_are_written_for_the_validation(tmp_path):
    docs = tmp_path / "docs"
    spoiled = _set("site", "z", 0.05)(sensor_frame())
    outcome = run_suite(spoiled, docs_dir=str(docs), run_name="source=s/run=1")

    assert outcome.docs_index == str(docs / "index.html")
    assert "sensor" in (docs / "index.html").read_text()
    pages = list((docs / "validations" / "sensor").rglob("*.html"))
    assert len(pages) == 1 and "source=s__run=1" in str(pages[0])
    page = pages[0].read_text()
    assert "Failed" in page and "values must belong to this set" in page


def test_no_docs_dir_means_no_docs(tmp_path):
    assert run_suite(sensor_frame()).docs_index is None


# -- the lake edge -----------------------------------------------------------------------------


def land(lake: Lake, frame: pd.DataFrame, run_id: str, source: str = "files") -> str:
    partition = lake.partition("landing", run_id, source)
    lake.write_table(f"{partition}/part-00000.parquet", pa.Table.from_pandas(frame, preserve_index=False))
    lake.write_json(f"{partition}/{MANIFEST}", {"rows": len(frame)})
    return partition


def landing_bytes(lake: Lake) -> dict[str, bytes]:
    return {p: lake.fs.cat_file(p) for p in sorted(lake.fs.find(lake.path("landing")))}


@pytest.fixture
def settings(tmp_path) -> Settings:
    env = {"FLYWHEEL_HOME": str(tmp_path), "FLYWHEEL_PARAMS": str(tmp_path / "params.yaml")}
    return Settings.from_env(env)


def test_run_passes_a_clean_batch_into_validated(settings):
    params = sensor_params()
    lake = Lake(settings.lake_root(params))
    landing = land(lake, sensor_frame(), "run-1")

    summary = validate.run(params, settings)

    assert summary["verdict"] == "pass" and summary["validated_rows"] == 200 and summary["rejected_rows"] == 0
    (part,) = summary["partitions"]
    assert part["partition"] == landing and part["failed_expectations"] == []
    assert Path(part["docs_index"]).is_file()
    validated = lake.path("validated", "source=files", "run=run-1")
    assert lake.complete_partitions("validated") == [validated]
    manifest = lake.read_json(f"{validated}/{MANIFEST}")
    assert manifest["rows"] == 200 and manifest["duplicates_dropped"] == 0 and manifest["gx_success"] is True
    assert manifest["landing"] == landing and manifest["result_path"] == part["result_path"]
    frame = lake.read_frame(f"{validated}/part-00000.parquet")
    assert list(frame.columns) == list(sensor_frame().columns) and len(frame) == 200
    assert lake.read_json(part["result_path"])["success"] is True
    json.dumps(summary)


def test_run_rejects_a_failing_batch_and_never_touches_landing(settings):
    params = sensor_params()
    lake = Lake(settings.lake_root(params))
    land(lake, sensor_frame(seed=1), "run-1")
    landing = land(lake, _set("temperature", -5.0, 0.35)(sensor_frame(seed=2)), "run-2")
    before = landing_bytes(lake)

    summary = validate.run(params, settings)

    assert summary["verdict"] == "fail"
    assert [p["verdict"] for p in summary["partitions"]] == ["pass", "fail"]
    assert (summary["validated_rows"], summary["rejected_rows"]) == (200, 200)
    rejected = lake.path("rejected", "source=files", "run=run-2")
    assert lake.complete_partitions("rejected") == [rejected]
    assert not lake.fs.exists(lake.path("validated", "source=files", "run=run-2"))
    manifest = lake.read_json(f"{rejected}/{MANIFEST}")
    assert manifest["rows"] == 200 and manifest["landing"] == landing
    assert ("expect_column_values_to_be_between", "temperature") in {
        (f["expectation"], f["column"]) for f in manifest["failures"]
    }
    result = lake.read_json(summary["partitions"][1]["result_path"])
    assert result["success"] is False and result["failures"] and result["result"]["results"]
    assert landing_bytes(lake) == before

    message = str(validate.ValidationFailed.from_summary(summary))
    assert landing in message and "expect_column_values_to_be_between(temperature)" in message
    assert "examples [-5.0" in message and "run=run-1" not in message


def test_a_second_run_finds_nothing_to_validate(settings):
    params = sensor_params()
    lake = Lake(settings.lake_root(params))
    land(lake, sensor_frame(), "run-1")
    land(lake, sensor_frame().head(10), "run-2")
    validate.run(params, settings)

    again = validate.run(params, settings)

    assert again == {
        "verdict": "nothing_to_validate",
        "partitions": [],
        "validated_rows": 0,
        "rejected_rows": 0,
    }


def test_run_only_validates_the_given_source(settings):
    params = sensor_params()
    lake = Lake(settings.lake_root(params))
    land(lake, sensor_frame(), "run-1", source="kafka")

    assert validate.run(params, settings, source="files")["verdict"] == "nothing_to_validate"
    assert validate.run(params, settings, source="kafka")["verdict"] == "pass"


def test_run_resolves_extra_expectations_next_to_the_params_file(settings, tmp_path):
    (tmp_path / "extra.json").write_text(
        json.dumps(
            [
                {
                    "type": "expect_column_values_to_be_between",
                    "kwargs": {"column": "temperature", "max_value": 50},
                },
            ]
        )
    )
    params = sensor_params(extra_expectations="extra.json")
    land(Lake(settings.lake_root(params)), sensor_frame(), "run-1")

    summary = validate.run(params, settings)

    assert summary["verdict"] == "fail"
    assert any("temperature" in f for f in summary["partitions"][0]["failed_expectations"])


def test_run_with_a_bad_extras_file_fails_before_writing(settings, tmp_path):
    (tmp_path / "extra.json").write_text(json.dumps([{"type": "expect_nothing", "kwargs": {}}]))
    params = sensor_params(extra_expectations="extra.json")
    lake = Lake(settings.lake_root(params))
    land(lake, sensor_frame(), "run-1")

    with pytest.raises(validate.ExpectationsFileError, match=r"\[0\].*expect_nothing"):
        validate.run(params, settings)
    assert lake.complete_partitions("validated") == lake.complete_partitions("rejected") == []


def test_run_on_a_remote_lake_uploads_the_data_docs(settings):
    params = sensor_params(storage_root=f"memory://flywheel-{uuid.uuid4().hex}")
    lake = Lake(settings.lake_root(params))
    land(lake, sensor_frame(), "run-1")

    summary = validate.run(params, settings)

    (part,) = summary["partitions"]
    assert summary["verdict"] == "pass"
    assert part["docs_index"] == lake.path(
        "reports", "validation", "source=files", "run=run-1", "data_docs", "index.html"
    )
    assert b"sensor" in lake.fs.cat_file(part["docs_index"])
    assert lake.fs.glob(lake.path("reports", "validation", "**", "validations", "**", "*.html"))
