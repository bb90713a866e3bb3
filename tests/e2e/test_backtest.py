"""`flywheel backtest` on 2.5 years of the NOAA example: every policy, the prequential scores, the report."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
import yaml

from tests.support.install import ROOT, make_installation, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NOAA = ROOT / "examples" / "noaa-weather"
POLICIES = ["never", "every:2", "drift", "always"]


def noaa_install(tmp_path, monkeypatch):
    """The example's params with a one-year window and tiny training, and its first 2.5 years of days."""
    params = yaml.safe_load((NOAA / "params.yaml").read_text())
    params["snapshot"]["window_days"] = 365
    params["train"].update(epochs=5, patience=2)
    params["promote"].update(min_roc_auc=0.55, min_pr_auc=0.3)  # tiny training: the first model must serve
    install = make_installation(tmp_path, monkeypatch, params)
    lines = (NOAA / "noaa_weather.csv").read_text().splitlines(keepends=True)
    (install.events / "noaa.csv").write_text("".join(lines[: 1 + 365 + 6 * 90]))
    return install


@pytest.fixture(scope="module")
def backtested(tmp_path_factory):
    """One backtest of six 90-day steps with four policies: the installation, the summary, backtest.json."""
    from pipelines import cli

    tmp_path = tmp_path_factory.mktemp("backtest")
    with pytest.MonkeyPatch.context() as monkeypatch:
        install = noaa_install(tmp_path, monkeypatch)
        out, stdout = tmp_path / "report", io.StringIO()
        args = ["backtest", "--data", str(install.events), "--step", "90d", "--out", str(out), "--json"]
        with contextlib.redirect_stdout(stdout):
            code = cli.main([*args, "--policies", ",".join(POLICIES)])
        summary = json.loads(stdout.getvalue().strip().splitlines()[-1])
        assert code == 0, summary
        yield install, summary, json.loads((out / "backtest.json").read_text())


def test_every_policy_has_a_row_on_the_same_steps(backtested):
    _, _, doc = backtested
    rows = {row["policy"]: row for row in doc["policies"]}

    assert list(rows) == POLICIES and doc["clock"]["steps"] == 6
    assert all(row["steps_scored"] == 6 and 0.5 < row["mean_roc_auc"] <= 1 for row in rows.values())
    assert rows["never"]["retrains"] == 0 and rows["never"]["promotions"] == 0  # the first model only
    assert rows["always"]["retrains"] == rows["always"]["promotions"] == 5  # every step but the last
    assert rows["every:2"]["retrains"] == 2  # after steps 2 and 4
    assert rows["drift"]["drift_checks"] == 5 and rows["drift"]["alarms"] is not None
    assert rows["never"]["alarms"] is None  # only the drift policy pays for the check
    assert rows["every:2"]["vs_baseline"]["steps"] == 6
    serving = {name: [r["serving"] for r in records] for name, records in doc["steps"].items()}
    assert serving["never"] == ["m0000"] * 6
    assert serving["always"] == ["m0000", "m0001", "m0002", "m0003", "m0004", "m0005"]


def test_every_score_is_on_events_after_the_scored_model_was_trained(backtested):
    """The prequential property: a model is only ever judged on events newer than all it learned from."""
    _, _, doc = backtested
    scored = [r for records in doc["steps"].values() for r in records if r["roc_auc"] is not None]

    assert len(scored) == 6 * len(POLICIES)
    for r in scored:
        assert r["serving_trained_until"] <= r["start"], r
        assert r["serving_newest_event"] < r["start"], r
    assert doc["first_model"]["window_end"] <= doc["steps"]["never"][0]["start"]


def test_the_report_files_and_the_summary(backtested):
    _, summary, doc = backtested
    files = summary["files"]

    assert set(files) == {"json", "png", "html"}
    with open(files["png"], "rb") as png:
        assert png.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(files["html"]) as html:
        page = html.read()
    assert "data:image/png;base64," in page and all(f"<td>{name}</td>" in page for name in POLICIES)
    assert summary["table"][0].startswith("| policy |") and len(summary["table"]) == 2 + len(POLICIES)
    assert doc["data"]["rows"] == 365 + 6 * 90 and doc["data"]["quarantined"] == 0


def test_the_run_is_logged_to_the_backtest_experiment(backtested):
    import mlflow

    install, summary, _ = backtested
    client = mlflow.MlflowClient(install.settings().tracking_uri)

    run = client.get_run(summary["mlflow_run_id"])
    assert client.get_experiment(run.info.experiment_id).name == "flywheel-backtest"
    assert run.data.metrics["always.promotions"] == 5 and "every_2.mean_roc_auc" in run.data.metrics
    assert run.data.params["clock.steps"] == "6" and run.data.params["snapshot.window"] == "expanding"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "backtest")}
    assert artifacts == {"backtest/backtest.json", "backtest/backtest.png", "backtest/backtest.html"}


@pytest.mark.parametrize(
    ("option", "fragment"),
    [(["--step", "12h"], "--step '12h'"), (["--policies", "never,sometimes"], "policy 'sometimes'")],
)
def test_a_bad_option_is_refused_with_its_value(tmp_path, monkeypatch, capsys, option, fragment):
    install = noaa_install(tmp_path, monkeypatch)
    code, summary = run_cli(capsys, "backtest", "--data", str(install.events), *option)
    assert code == 2 and fragment in summary["error"]
