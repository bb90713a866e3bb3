"""A regression and a multiclass dataset of their own schemas through the whole loop, by params alone.

Each installation takes its example's ``params.yaml`` (``examples/delivery-times``,
``examples/support-tickets``) with only the events folder and a short training changed: demo events of
the task are ingested and validated, ``flywheel repro`` trains, evaluates and promotes a first champion,
``flywheel reproduce`` rebuilds it with the same metrics; then a drifted day arrives, ``flywheel drift``
judges the champion's task metric on it (lower RMSE is better), and a retrain is gated by the task's
metric and direction.
"""

from __future__ import annotations

import contextlib
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from mlflow import MlflowClient

from tests.support.install import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TASKS = {
    "regression": ("delivery-times", {"rmse", "mae", "r2"}, ["prediction"]),
    "multiclass": ("support-tickets", {"macro_f1", "log_loss", "accuracy"}, ["label", "probability"]),
}
TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
YESTERDAY = TODAY - timedelta(days=1)


def cli_json(*args: str) -> tuple[int, dict]:
    """Run a ``flywheel`` command in-process; its exit code and JSON summary."""
    from pipelines import cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main([*args, "--json"])
    return code, json.loads(out.getvalue().strip().splitlines()[-1])


@pytest.fixture(scope="module", params=sorted(TASKS))
def loop(request, tmp_path_factory) -> dict:
    """One task's installation after: first data → repro → reproduce → drifted day → drift → repro."""
    task = request.param
    folder = TASKS[task][0]
    tmp = tmp_path_factory.mktemp(task)
    home, events = tmp / "home", tmp / "events"
    params = yaml.safe_load((ROOT / "examples" / folder / "params.yaml").read_text())
    params["ingest"]["files"]["path"] = str(events)
    params["train"].update(epochs=6, patience=3)
    params["drift"].update(window_days=1, min_rows=200, max_performance_drop=0.0)
    (tmp / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    mp = pytest.MonkeyPatch()
    for key, value in {
        "FLYWHEEL_HOME": str(home),
        "FLYWHEEL_PARAMS": str(tmp / "params.yaml"),
        "FLYWHEEL_PROJECT": str(ROOT),
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
    }.items():
        mp.setenv(key, value)
    day = YESTERDAY.strftime("%Y-%m-%d")
    out: dict = {"task": task, "params": params, "home": home}
    steps = [
        (
            "produce",
            ["produce", "--task", task, "--out", str(events), "--rows", "4000", "--seed", "5", "--end", day],
        ),
        ("ingest", ["ingest"]),
        ("validate", ["validate"]),
        ("first", ["repro"]),
        ("reproduce", ["reproduce", "champion"]),
        (
            "drifted",
            [
                "produce",
                "--task",
                task,
                "--out",
                str(events),
                "--rows",
                "1500",
                "--seed",
                "6",
                "--batch",
                "drifted",
                "--start",
                day,
                "--end",
                TODAY.strftime("%Y-%m-%d"),
                "--covariate-drift",
                "1",
                "--concept-drift",
                "1",
            ],
        ),
        ("ingest2", ["ingest"]),
        ("validate2", ["validate"]),
        ("drift", ["drift", "--as-of", day]),
        ("retrain", ["repro"]),
    ]
    for name, command in steps:
        out[name] = cli_json(*command)
        assert out[name][0] == 0, (name, out[name])
    yield out
    mp.undo()


def test_the_first_model_becomes_champion_with_the_tasks_metrics(loop):
    _, metrics, _ = TASKS[loop["task"]]
    code, first = loop["first"]
    assert first["stages"] == {"snapshot": "ran", "featurize": "ran", "train": "ran", "evaluate": "ran"}
    promotion = first["promotion"]
    assert promotion["promoted"] is True and promotion["gate"]["condition"] == "first_champion", promotion
    assert set(promotion["candidate"]) == metrics == set(promotion["gate"]["evaluated"])
    assert promotion["infra_check"]["ok"] is True
    evaluated = json.loads((loop["home"] / "workspace" / "metrics" / "evaluate.json").read_text())
    assert metrics <= set(evaluated)
    if loop["task"] == "regression":
        assert evaluated["r2"] > 0.5
        residuals = json.loads((loop["home"] / "workspace" / "plots" / "residuals.json").read_text())
        assert residuals and set(residuals[0]) == {"predicted", "actual", "residual"}
    else:
        assert evaluated["macro_f1"] > 0.3 and {"precision_billing", "recall_account"} <= set(evaluated)
        confusion = json.loads((loop["home"] / "workspace" / "plots" / "confusion.json").read_text())
        assert {row["actual"] for row in confusion} <= {"billing", "technical", "sales", "account"}


def test_the_champion_answers_as_users_expect(loop):
    import mlflow
    import pandas as pd

    _, _, columns = TASKS[loop["task"]]
    params = loop["params"]
    name = params["promote"]["model_name"]
    client = MlflowClient()
    version = client.get_model_version_by_alias(name, "champion")
    rows = pd.read_parquet(loop["home"] / "workspace" / "data" / "split" / "test.parquet").head(10)
    features = [c["name"] for c in params["schema"]["columns"]]
    out = mlflow.pyfunc.load_model(f"models:/{name}/{version.version}").predict(rows[features])
    assert list(out.columns[: len(columns)]) == columns and len(out) == 10
    if loop["task"] == "multiclass":
        classes = params["schema"]["classes"]
        assert list(out.columns[2:]) == [f"proba_{c}" for c in classes]
        assert set(out["label"]) <= set(classes)


def test_reproduce_gives_the_same_task_metrics(loop):
    _, metrics, _ = TASKS[loop["task"]]
    out = loop["reproduce"][1]
    assert set(out["metrics"]) == metrics
    for metric, diff in out["metrics"].items():
        assert diff["difference"] is not None and abs(diff["difference"]) < 1e-6, (metric, out["metrics"])


def test_the_drifted_day_is_judged_on_the_tasks_metric_and_retrains(loop):
    drift = loop["drift"][1]
    performance = drift["performance"]
    metric = loop["params"]["drift"]["performance_metric"]
    assert performance is not None and performance["metric"] == metric, drift
    assert performance["window"] is not None, performance["description"]
    if loop["task"] == "regression":  # slower evening deliveries, longer trips: RMSE is worse
        assert performance["window"] > performance["evaluated"]["value"], performance["description"]
        assert performance["dropped"] is True and "lower is better" in performance["description"]
        assert drift["verdict"]["retrain"] is True, drift["verdict"]
    retrain = loop["retrain"][1]
    assert retrain["stages"]["train"] == "ran"
    gate = retrain["promotion"]["gate"]
    assert gate["metric"] == loop["params"]["promote"]["metric"]
    assert gate["condition"] in ("clears_margin", "below_margin"), retrain["promotion"]
    assert retrain["promotion"]["champion_scores"] is not None
