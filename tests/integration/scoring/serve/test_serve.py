"""`flywheel serve` on real HTTP against a real MLflow registry with a trained, promoted champion.

The server runs in a thread of the test process on a free loopback port. Each test asks the registry
which version is the champion right now, so the tests pass alone and in any order (the alias move
leaves another version behind ``champion``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import threading
from collections import defaultdict
from pathlib import Path

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from pipelines.common.config import ServeConfig
from pipelines.promote import CHAMPION, registry
from pipelines.scoring.serve import ServerThread
from tests.support.live_airflow import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECORD = {
    "amount": 42.5,
    "merchant_category": "grocery",
    "country": "US",
    "device": "web",
    "hour_of_day": 13,
    "customer_age": 37,
    "account_tenure_days": 400,
}


@pytest.fixture(scope="module")
def champion(trained) -> dict:
    """The first `flywheel repro` of the installation promotes a champion."""
    from pipelines import cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["repro", "--json"])
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    assert code == 0 and summary["promotion"]["promoted"] is True, summary
    return dict(summary["promotion"])


def current_champion(install) -> str:
    client = MlflowClient(install.settings().tracking_uri)
    return str(client.get_model_version_by_alias(install.params().promote.model_name, CHAMPION).version)


def serve(install, token: str | None = None, **serve_params) -> ServerThread:
    params = install.params()
    params = params.model_copy(update={"serve": ServeConfig(**{"poll_seconds": 30, **serve_params})})
    return ServerThread(params, install.settings(), free_port(), token=token)


def events(install, rows: int) -> pd.DataFrame:
    """Demo events as they were produced (key, time and label included)."""
    return pd.read_json(next(install.events.glob("*.jsonl")), lines=True, nrows=rows, dtype=False)


def test_a_valid_request_gets_the_champions_scores(trained, champion):
    version = current_champion(trained)
    rows = events(trained, 200)
    records = json.loads(rows.to_json(orient="records", date_format="iso"))
    with serve(trained) as url:
        answer = httpx.post(f"{url}/predict", json={"records": records}, timeout=60)
        described = httpx.get(f"{url}/version").json()
        health = httpx.get(f"{url}/health")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"] == {"name": trained.params().promote.model_name, "version": version}
    scores = [p["probability"] for p in body["predictions"]]
    assert [p["key"] for p in body["predictions"]] == rows["transaction_id"].tolist()
    model = mlflow.pyfunc.load_model(f"models:/{trained.params().promote.model_name}/{version}")
    features = list(trained.params().schema.feature_names)
    expected = model.predict(pd.DataFrame(records)[features])
    np.testing.assert_allclose(scores, expected["probability"], rtol=1e-6)
    assert [p["label"] for p in body["predictions"]] == expected["label"].tolist()
    assert described["version"] == version and described["alias"] == "champion"
    assert described["run_id"] and described["serving_since"]
    assert health.status_code == 200 and health.json()["ready"] is True


@pytest.mark.parametrize(
    ("change", "field", "rule"),
    [
        ({"amount": None}, "amount", "missing; expected a float (a required column)"),
        ({"hour_of_day": "13"}, "hour_of_day", "expected an integer between 0 and 23"),
        ({"device": "fax"}, "device", "unknown category; expected one of: mobile, web, pos"),
        ({"colour": "red"}, "colour", "unknown field"),
    ],
)
def test_malformed_input_is_answered_400_naming_the_field(trained, champion, change, field, rule):
    bad = {k: v for k, v in {**RECORD, **change}.items() if v is not None}
    with serve(trained) as url:
        answer = httpx.post(f"{url}/predict", json={"records": [RECORD, bad]})
        not_json = httpx.post(f"{url}/predict", content=b"{records", headers={"content-type": "text/plain"})
    assert answer.status_code == 400, answer.text
    detail = answer.json()
    assert (detail["record"], detail["field"]) == (1, field)
    assert rule in detail["rule"] and f"field {field!r} of record 1" in detail["error"]
    assert not_json.status_code == 400 and "expected a JSON body" in not_json.json()["rule"]


def test_unknown_categories_are_scored_when_serve_allows_them(trained, champion):
    with serve(trained, unknown_category="score") as url:
        answer = httpx.post(f"{url}/predict", json=[{**RECORD, "device": "fax"}])
    assert answer.status_code == 200, answer.text
    assert 0.0 <= answer.json()["predictions"][0]["probability"] <= 1.0


def test_with_a_token_every_endpoint_but_health_needs_it(trained, champion):
    with serve(trained, token="s3cret") as url:
        anonymous = httpx.post(f"{url}/predict", json=[RECORD])
        wrong = httpx.get(f"{url}/version", headers={"Authorization": "Bearer guess"})
        right = httpx.post(f"{url}/predict", json=[RECORD], headers={"Authorization": "Bearer s3cret"})
        health = httpx.get(f"{url}/health")
    assert anonymous.status_code == 401 and wrong.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert "FLYWHEEL_SERVE_TOKEN" in anonymous.json()["error"]
    assert right.status_code == 200 and len(right.json()["predictions"]) == 1
    assert health.status_code == 200


def test_an_alias_move_during_a_burst_drops_no_request_and_switches_versions(trained, champion):
    name, client = trained.params().promote.model_name, MlflowClient(trained.settings().tracking_uri)
    old = current_champion(trained)
    source = client.get_model_version(name, old).source
    new = str(mlflow.register_model(source, name).version)  # a new version of the same model files ...
    for key, value in client.get_model_version(name, old).tags.items():  # ... with the same gate record
        client.set_model_version_tag(name, new, key, value)
    seen: dict[int, list[tuple[int, str | None]]] = defaultdict(list)
    warmed = threading.Barrier(5)

    def burst(worker: int, url: str) -> None:
        with httpx.Client(timeout=60) as http:
            for sent in range(20_000):  # a bound, never reached: the loop ends once the new version answers
                answer = http.post(f"{url}/predict", json=[RECORD] * 10)
                version = answer.json().get("model", {}).get("version") if answer.status_code == 200 else None
                seen[worker].append((answer.status_code, version))
                if sent == 20:
                    warmed.wait()
                if version == new and sum(v == new for _, v in seen[worker]) >= 20:
                    return

    with serve(trained, poll_seconds=0.2) as url:
        workers = [threading.Thread(target=burst, args=(i, url)) for i in range(4)]
        for worker in workers:
            worker.start()
        warmed.wait()  # every client has had answers from the old champion
        registry.move_alias(client, name, CHAMPION, new, "serve test: alias move during a burst")
        for worker in workers:
            worker.join()
    assert len(seen) == 4
    for answers in seen.values():
        assert {status for status, _ in answers} == {200}, answers
        versions = [v for _, v in answers]
        switch = versions.index(new)
        assert switch > 20 and set(versions[:switch]) == {old} and set(versions[switch:]) == {new}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def expected_counts(install) -> dict[str, int]:
    from pipelines.common.lake import Lake

    lake = Lake(install.settings().lake_root(install.params()))
    totals = {"landed": 0, "quarantined": 0}
    for partition in lake.complete_partitions("landing", source="files"):
        counts = lake.read_json(f"{partition}/_manifest.json")["counts"]
        totals = {k: totals[k] + counts[k] for k in totals}
    return totals


def test_metrics_expose_the_champion_its_evaluated_metric_drift_and_landed_rows(trained, champion):
    import subprocess
    import sys
    import time

    from pipelines import report

    code, _ = drift_check()
    assert code in (0, 3)  # a drift check ran and wrote its summary (3: it asked for a retrain)
    name, version = trained.params().promote.model_name, current_champion(trained)
    scored = run_cli("score")["scored_by_version"]
    report.write(
        trained.params(), trained.settings(), "flywheel_drift", "manual__metrics", {"verdict": "test"}
    )
    with serve(trained, token="s3cret") as url:
        refused = httpx.get(f"{url}/metrics")
        served = samples(httpx.get(f"{url}/metrics", headers={"Authorization": "Bearer s3cret"}).text)
    assert refused.status_code == 401
    port = free_port()
    exporter = subprocess.Popen(
        [str(Path(sys.executable).parent / "flywheel"), "metrics-exporter", "--port", str(port)],
        env={**os.environ, **trained.settings().as_env()},
    )
    try:
        for _ in range(600):  # until it listens (a bound, not a timing)
            try:
                exported = samples(httpx.get(f"http://127.0.0.1:{port}/metrics").text)
                break
            except httpx.TransportError:
                time.sleep(0.1)
    finally:
        exporter.terminate()
        exporter.wait()
    counts = expected_counts(trained)
    for found in (served, exported):
        assert found[("flywheel_champion_version", (("model", name),))] == float(version)
        pr_auc = found[
            ("flywheel_champion_evaluated", (("metric", "pr_auc"), ("model", name), ("stat", "mean")))
        ]
        assert 0 < pr_auc <= 1
        assert 0 <= found[("flywheel_drift_share", ())] <= 1
        assert found[("flywheel_rows_landed_total", (("source", "files"),))] == counts["landed"] > 0
        assert found[("flywheel_rows_quarantined_total", (("source", "files"),))] == counts["quarantined"]
        by_version = {
            f"{dict(labels)['model']} v{dict(labels)['version']}": value
            for (series, labels), value in found.items()
            if series == "flywheel_rows_scored_total"
        }
        assert by_version == scored and sum(by_version.values()) > 0
        assert found[("flywheel_last_run_age_seconds", (("dag_id", "flywheel_drift"),))] >= 0
        errors = {k: v for k, v in found.items() if k[0] == "flywheel_metrics_errors"}
        assert {k[1][0][1] for k in errors} >= {"scoring", "runs", "kafka"}
        assert errors and set(errors.values()) == {0.0}, errors
    assert served[("flywheel_serve_model_version", (("model", name),))] == float(version)


def run_cli(*args: str) -> dict:
    from pipelines import cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main([*args, "--json"]) == 0
    return json.loads(out.getvalue().strip().splitlines()[-1])


def drift_check() -> tuple[int, dict]:
    from pipelines import cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["drift", "--json"])
    return code, json.loads(out.getvalue().strip().splitlines()[-1])
