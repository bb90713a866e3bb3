"""The `flywheel` command: JSON summaries as the last line, clear errors with a non-zero exit."""

from __future__ import annotations

import json

import pytest
import yaml

from pipelines import cli

STAGES = [
    "produce",
    "ingest",
    "validate",
    "snapshot",
    "featurize",
    "train",
    "evaluate",
    "promote",
    "init",
    "repro",
    "summary",
    "backtest",
]


def last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.fixture
def install(tmp_path, monkeypatch, repo_root):
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    params["ingest"]["files"]["path"] = str(tmp_path / "events")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FLYWHEEL_PARAMS", str(tmp_path / "params.yaml"))
    return tmp_path


@pytest.mark.parametrize("command", STAGES)
def test_every_command_takes_json(command):
    actions = cli.build_parser()._subparsers._group_actions[0].choices[command]._option_string_actions
    assert "--json" in actions


def test_produce_ingest_validate_print_json_last(install, capsys):
    assert (
        cli.main(
            [
                "produce",
                "--out",
                str(install / "events"),
                "--rows",
                "500",
                "--malformed-fraction",
                "0.02",
                "--json",
            ]
        )
        == 0
    )
    assert last_json(capsys)["rows"] == 500
    assert cli.main(["ingest", "--json"]) == 0
    landed = last_json(capsys)
    assert landed["consumed"] == landed["landed"] + landed["quarantined"] == 500
    assert landed["quarantined"] > 0 and landed["reasons"]
    assert cli.main(["validate", "--json"]) == 0
    assert last_json(capsys)["verdict"] == "pass"


def test_invalid_params_fail_with_key_value_and_expectation(install, capsys):
    params = yaml.safe_load((install / "params.yaml").read_text())
    params["train"]["learning_rate"] = -1
    (install / "params.yaml").write_text(yaml.safe_dump(params))
    assert cli.main(["ingest", "--json"]) == cli.EXIT_FAILED
    out = last_json(capsys)
    assert out["ok"] is False
    assert "train.learning_rate = -1: expected" in out["error"]


def test_rejected_batch_exits_3_naming_the_failed_expectation(install, capsys):
    from pipelines.demo import generator as produce

    frame = produce.generate(400, seed=1)
    frame["device"] = "fax"  # not a category of the schema
    (install / "events").mkdir()
    frame.to_parquet(install / "events" / "batch.parquet")
    assert cli.main(["ingest", "--json"]) == 0
    capsys.readouterr()
    assert cli.main(["validate", "--json"]) == cli.EXIT_REJECTED
    captured = capsys.readouterr()
    assert "expect_column_values_to_be_in_set(device)" in captured.err
    assert json.loads(captured.out.strip().splitlines()[-1])["verdict"] == "fail"


def test_missing_source_folder_is_a_clear_error(install, capsys):
    assert cli.main(["ingest", "--json"]) == cli.EXIT_FAILED
    assert str(install / "events") in last_json(capsys)["error"]


@pytest.mark.parametrize(
    "argv",
    [
        ["produce", "--out", "x", "--covariate-drift", "2"],
        ["snapshot", "--as-of", "yesterday"],
        ["repro", "--set", "epochs"],
    ],
)
def test_bad_arguments_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert "expected" in capsys.readouterr().err
