"""The suite: GX expectations generated from the schema, and extra expectations from a file."""

from __future__ import annotations

import json

import pytest

from pipelines.validate.gate import validate_frame
from pipelines.validate.suite import ExpectationsFileError, build_suite, load_extra_expectations
from tests.support.data import sensor_frame, sensor_params


def build_sensor_suite():
    params = sensor_params()
    return build_suite(params.schema, params.validation)


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
    extra = load_extra_expectations("checks/extra.json", base_dir=tmp_path)
    params = sensor_params()
    outcome = validate_frame(sensor_frame(), params.schema, params.validation, extra=extra)

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
    with pytest.raises(ExpectationsFileError) as error:
        build_suite(params.schema, params.validation, entries)

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
    with pytest.raises(ExpectationsFileError) as error:
        load_extra_expectations("extra.json", base_dir=tmp_path)

    for word in words:
        assert word in str(error.value)
