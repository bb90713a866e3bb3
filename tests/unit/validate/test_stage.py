"""The lake edge: landed partitions validated into the validated or rejected tier; landing never touched."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from pipelines.common.lake import MANIFEST, Lake
from pipelines.validate import stage as validate
from pipelines.validate.gate import ValidationFailed
from pipelines.validate.suite import ExpectationsFileError
from tests.support.data import sensor_frame, sensor_params, spoil, write_partition


def landing_bytes(lake: Lake) -> dict[str, bytes]:
    return {p: lake.fs.cat_file(p) for p in sorted(lake.fs.find(lake.path("landing")))}


def test_run_passes_a_clean_batch_into_validated(tmp_settings):
    params = sensor_params()
    lake = Lake(tmp_settings.lake_root(params))
    landing = write_partition(lake, "landing", sensor_frame(), "run-1")

    summary = validate.run(params, tmp_settings)

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


def test_run_rejects_a_failing_batch_and_never_touches_landing(tmp_settings):
    params = sensor_params()
    lake = Lake(tmp_settings.lake_root(params))
    write_partition(lake, "landing", sensor_frame(seed=1), "run-1")
    landing = write_partition(
        lake, "landing", spoil("temperature", -5.0, 0.35)(sensor_frame(seed=2)), "run-2"
    )
    before = landing_bytes(lake)

    summary = validate.run(params, tmp_settings)

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

    message = str(ValidationFailed.from_summary(summary))
    assert landing in message and "expect_column_values_to_be_between(temperature)" in message
    assert "examples [-5.0" in message and "run=run-1" not in message


def test_a_second_run_finds_nothing_to_validate(tmp_settings):
    params = sensor_params()
    lake = Lake(tmp_settings.lake_root(params))
    write_partition(lake, "landing", sensor_frame(), "run-1")
    write_partition(lake, "landing", sensor_frame().head(10), "run-2")
    validate.run(params, tmp_settings)

    again = validate.run(params, tmp_settings)

    assert again == {
        "verdict": "nothing_to_validate",
        "partitions": [],
        "validated_rows": 0,
        "rejected_rows": 0,
        "late_labels": 0,
    }


def test_run_only_validates_the_given_source(tmp_settings):
    params = sensor_params()
    lake = Lake(tmp_settings.lake_root(params))
    write_partition(lake, "landing", sensor_frame(), "run-1", source="kafka")

    assert validate.run(params, tmp_settings, source="files")["verdict"] == "nothing_to_validate"
    assert validate.run(params, tmp_settings, source="kafka")["verdict"] == "pass"


def test_run_resolves_extra_expectations_next_to_the_params_file(tmp_settings, tmp_path):
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
    write_partition(Lake(tmp_settings.lake_root(params)), "landing", sensor_frame(), "run-1")

    summary = validate.run(params, tmp_settings)

    assert summary["verdict"] == "fail"
    assert any("temperature" in f for f in summary["partitions"][0]["failed_expectations"])


def test_run_with_a_bad_extras_file_fails_before_writing(tmp_settings, tmp_path):
    (tmp_path / "extra.json").write_text(json.dumps([{"type": "expect_nothing", "kwargs": {}}]))
    params = sensor_params(extra_expectations="extra.json")
    lake = Lake(tmp_settings.lake_root(params))
    write_partition(lake, "landing", sensor_frame(), "run-1")

    with pytest.raises(ExpectationsFileError, match=r"\[0\].*expect_nothing"):
        validate.run(params, tmp_settings)
    assert lake.complete_partitions("validated") == lake.complete_partitions("rejected") == []


def test_run_on_a_remote_lake_uploads_the_data_docs(tmp_settings):
    params = sensor_params(storage_root=f"memory://flywheel-{uuid.uuid4().hex}")
    lake = Lake(tmp_settings.lake_root(params))
    write_partition(lake, "landing", sensor_frame(), "run-1")

    summary = validate.run(params, tmp_settings)

    (part,) = summary["partitions"]
    assert summary["verdict"] == "pass"
    assert part["docs_index"] == lake.path(
        "reports", "validation", "source=files", "run=run-1", "data_docs", "index.html"
    )
    assert b"sensor" in lake.fs.cat_file(part["docs_index"])
    assert lake.fs.glob(lake.path("reports", "validation", "**", "validations", "**", "*.html"))
