"""`flywheel score` against a real champion in MLflow: exactly once across a kill -9, a champion change,
and late labels (a label file, or events sent again with another label) giving the champion's metric per day.

One installation (validated demo events in several partitions, `flywheel repro` ran once) is shared by
the module; each test scores into its own lake (a copy of the validated tier), and a test that moves
the `champion` alias puts it back.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from tests.support.install import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BATCHES = 3  # validated partitions added to the installation's first one


def cli(*args: str) -> dict:
    from pipelines import cli as flywheel

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = flywheel.main([*args, "--json"])
    result = json.loads(out.getvalue().strip().splitlines()[-1])
    assert code == 0, result
    return result


@pytest.fixture(scope="module")
def champion(trained) -> dict:
    """More validated partitions, then the first `flywheel repro`: its promotion."""
    from pipelines.demo import generator as produce

    for i in range(BATCHES):
        folder = trained.events.parent / f"batch-{i}"
        produce.produce(str(folder), rows=600, seed=100 + i, batch=f"batch{i}")
        cli("ingest", "--path", str(folder))
        cli("validate")
    promotion = cli("repro")["promotion"]
    assert promotion["promoted"] is True, promotion
    return promotion


@pytest.fixture
def lake(trained, champion, tmp_path, monkeypatch):
    """A lake of this test's own holding a copy of the installation's validated partitions."""
    root = tmp_path / "lake"
    shutil.copytree(trained.home / "lake" / "validated", root / "validated")
    params = yaml.safe_load(trained.params_path.read_text())
    params["storage"] = {"root": str(root)}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.setenv("FLYWHEEL_PARAMS", str(path))
    return root


def last_scoring(trained) -> dict:
    """The last scoring run's report, from the lake of the params in force (this test's own lake)."""
    from pipelines.common.config import load_params
    from pipelines.report import summary as report

    settings = trained.settings()
    return report.latest(load_params(settings.params_path), settings, "flywheel_scoring")


def validated_keys(root) -> pd.Series:
    frames = [pd.read_parquet(p) for p in sorted(root.glob("validated/*/*/part-00000.parquet"))]
    return pd.concat(frames)["transaction_id"].astype(str)


def predictions(root) -> pd.DataFrame:
    """Every predictions partition that has its manifest."""
    done = sorted(p.parent for p in root.glob("predictions/*/*/_manifest.json"))
    return pd.concat([pd.read_parquet(p / "part-00000.parquet") for p in done], ignore_index=True)


def champion_now(trained):
    from pipelines.promote import champion_version

    return champion_version(trained.params(), trained.settings())


# Run `flywheel score` in a child that kills itself with SIGKILL at an exact point of the second
# partition: before its manifest (its predictions written), or half-way through writing its predictions.
KILLER = """
import os, signal, sys
from pipelines.common import lake
write, seen = lake.Lake.write_bytes, []
def dying(self, path, data):
    if "/predictions/" in path and path.endswith(sys.argv[1]):
        seen.append(path)
        if len(seen) == 2:
            if sys.argv[1] == ".parquet":
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path + ".tmp", "wb") as fh:
                    fh.write(data[: len(data) // 2])
            os.kill(os.getpid(), signal.SIGKILL)
    write(self, path, data)
lake.Lake.write_bytes = dying
from pipelines import cli
sys.exit(cli.main(["score", "--json", "--run-id", "killed"]))
"""


@pytest.mark.parametrize("at", ["_manifest.json", ".parquet"])
def test_every_event_is_scored_exactly_once_across_a_kill_9_and_a_rerun(trained, lake, at):
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, at], cwd=ROOT, env=dict(os.environ), capture_output=True, text=True
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    keys = validated_keys(lake)
    partitions = len(list(lake.glob("validated/*/*/_manifest.json")))
    assert partitions == BATCHES + 1
    assert len(list(lake.glob("predictions/*/*/_manifest.json"))) == 1  # the first partition only
    assert len(list(lake.glob("predictions/*/*/part-00000.parquet*"))) == 2  # the second: torn or whole

    again = cli("score", "--run-id", "rerun")
    assert again["partitions_scored"] == partitions - 1 and again["partitions_skipped"] == 1
    scored = predictions(lake)
    assert scored["transaction_id"].is_unique
    assert sorted(scored["transaction_id"]) == sorted(keys)
    assert set(scored["scoring_run_id"]) == {"killed", "rerun"}
    assert not list(lake.glob("predictions/**/*.tmp"))
    assert cli("score", "--run-id", "third")["partitions_scored"] == 0  # idempotent


def test_a_new_champion_scores_from_the_next_run_and_rescores_only_when_asked(trained, lake, tmp_path):
    from mlflow import MlflowClient

    from pipelines.demo import generator as produce
    from pipelines.promote import CHAMPION, registry

    first = cli("score")
    before = champion_now(trained)
    assert set(predictions(lake)["model_version"]) == {str(before.version)}
    mlflow = MlflowClient(trained.settings().tracking_uri)
    newer = mlflow.create_model_version(before.name, before.source, run_id=before.run_id)
    registry.move_alias(mlflow, before.name, CHAMPION, str(newer.version), "test: a new champion")
    try:
        produce.produce(str(tmp_path / "late"), rows=500, seed=300, batch="late")
        cli("ingest", "--path", str(tmp_path / "late"))
        cli("validate")
        second = cli("score")
        assert second["model"]["version"] == str(newer.version)
        assert second["partitions_scored"] == 1 and second["partitions_skipped"] == first["partitions_scored"]
        versions = predictions(lake).groupby("model_version").size().to_dict()
        assert versions == {
            str(before.version): first["rows_scored"],
            str(newer.version): second["rows_scored"],
        }

        rescored = cli("score", "--rescore")
        assert rescored["partitions_rescored"] == first["partitions_scored"]
        assert set(predictions(lake)["model_version"]) == {str(newer.version)}
        assert predictions(lake)["transaction_id"].is_unique
        assert cli("score", "--rescore")["partitions_scored"] == 0
    finally:
        registry.move_alias(mlflow, before.name, CHAMPION, str(before.version), "test: put back")


def test_labels_joined_later_give_the_champions_metric_per_day(trained, lake, tmp_path):
    from pipelines.evaluate.metrics import metric

    cli("score")
    before = {d["day"]: d for d in cli("performance")["days"]}
    judged = [day for day, d in before.items() if d["interval"] is not None]
    assert judged, before
    day = judged[len(judged) // 2]
    scored = predictions(lake)
    on_day = scored[pd.to_datetime(scored["event_time"], utc=True).dt.strftime("%Y-%m-%d") == day]
    flipped = pd.DataFrame({"transaction_id": on_day["transaction_id"], "is_fraud": 1 - on_day["is_fraud"]})
    flipped.to_csv(tmp_path / "labels.csv", index=False)

    after = {d["day"]: d for d in cli("performance", "--labels", str(tmp_path / "labels.csv"))["days"]}
    expected = metric("roc_auc", (1 - on_day["is_fraud"]).astype(int).to_numpy(), on_day["score"].to_numpy())
    assert after[day]["value"] == pytest.approx(expected)
    assert after[day]["value"] == pytest.approx(1 - before[day]["value"])
    assert after[day]["late_labels"] == len(on_day)
    low, high = after[day]["interval"]["low"], after[day]["interval"]["high"]
    assert low <= after[day]["value"] <= high
    others = [d for d in after if d != day]
    assert all(after[d]["value"] == before[d]["value"] for d in others)
    assert (lake / "reports" / "performance" / "live.json").exists()


def test_events_sent_again_with_another_label_are_late_labels_of_the_champions_day(trained, lake, tmp_path):
    from pipelines.demo import generator as produce
    from pipelines.evaluate.metrics import metric

    cli("score")
    before = {d["day"]: d for d in cli("performance")["days"]}
    judged = [day for day, d in before.items() if d["interval"] is not None]
    assert len(judged) >= 2, before
    day, other = judged[len(judged) // 2], judged[0]
    scored = predictions(lake)
    days = pd.to_datetime(scored["event_time"], utc=True).dt.strftime("%Y-%m-%d")
    chargebacks = scored[(days == day) & (scored["is_fraud"] == 0)].head(40)["transaction_id"]
    resent = scored[days == other].head(30)["transaction_id"]  # delivered again, labels unchanged
    validated = pd.concat(pd.read_parquet(p) for p in sorted(lake.glob("validated/*/*/part-00000.parquet")))
    events = validated.set_index("transaction_id").drop(columns="_origin")
    again = pd.concat([events.loc[chargebacks].assign(is_fraud=1), events.loc[resent]]).reset_index()
    folder = tmp_path / "later"
    produce.produce(str(folder), rows=600, seed=500, batch="later")  # new events with them
    again.to_json(folder / "again.jsonl", orient="records", lines=True, date_format="iso", date_unit="us")
    cli("ingest", "--path", str(folder))

    checked = cli("validate")

    assert checked["verdict"] == "pass" and checked["late_labels"] == len(chargebacks) == 40
    (partition,) = checked["partitions"]
    assert partition["rows"] == 600  # each event once: the copies are not validated again
    after = {d["day"]: d for d in cli("performance")["days"]}
    on_day = scored[days == day].assign(is_fraud=lambda f: f["is_fraud"].astype(int))
    on_day.loc[on_day["transaction_id"].isin(chargebacks), "is_fraud"] = 1
    expected = metric("roc_auc", on_day["is_fraud"].to_numpy(), on_day["score"].to_numpy())
    assert after[day]["late_labels"] == 40 and after[day]["rows"] == before[day]["rows"]
    assert after[day]["value"] == pytest.approx(expected) and after[day]["value"] != before[day]["value"]
    assert after[other]["late_labels"] == 0 and after[other]["value"] == before[other]["value"]


def test_predictions_are_published_to_the_topic_keyed_by_event(
    trained, lake, tansu_broker, monkeypatch, request
):
    from kafka import KafkaConsumer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic

    from tests.support.sources import unique_topic

    topic = unique_topic(request, "predictions")
    admin = KafkaAdminClient(bootstrap_servers=tansu_broker.bootstrap)
    admin.create_topics([NewTopic(topic, 1, 1)])
    admin.close()
    params_path = os.environ["FLYWHEEL_PARAMS"]
    params = yaml.safe_load(open(params_path).read())
    params["score"] = {"publish_topic": topic}
    with open(params_path, "w") as fh:
        fh.write(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.setenv("FLYWHEEL_KAFKA_BOOTSTRAP", tansu_broker.bootstrap)

    summary = cli("score")
    assert summary["published"] == summary["rows_scored"] == len(validated_keys(lake))
    consumer = KafkaConsumer(bootstrap_servers=tansu_broker.bootstrap, enable_auto_commit=False)
    consumer.assign([TopicPartition(topic, 0)])
    consumer.seek_to_beginning()
    received = []
    while len(received) < summary["published"]:
        batch = consumer.poll(timeout_ms=5000)
        assert batch, f"the topic stopped after {len(received)} of {summary['published']} predictions"
        received += [m for messages in batch.values() for m in messages]
    consumer.close()
    values = [json.loads(m.value) for m in received]
    assert [m.key.decode() for m in received] == [v["transaction_id"] for v in values]
    assert sorted(v["transaction_id"] for v in values) == sorted(validated_keys(lake))
    manifests = [json.loads(p.read_text()) for p in lake.glob("predictions/*/*/_manifest.json")]
    assert all(m["topic"] == topic and m["published"] == m["rows"] for m in manifests)


def test_the_scoring_dag_scores_new_events_once_and_reports_them(trained, lake, dagbag):
    from tests.support.install import run_dag

    run, states = run_dag(dagbag, "flywheel_scoring")
    assert run.state == "success" and states == {"score": "success", "measure": "success"}, states
    first = last_scoring(trained)
    assert first["score"]["rows_scored"] == len(validated_keys(lake))
    assert first["performance"]["days"] and first["performance"]["report"].startswith(str(lake))
    version = str(champion_now(trained).version)
    assert first["score"]["scored_by_version"] == {f"card-fraud v{version}": len(validated_keys(lake))}

    run, states = run_dag(dagbag, "flywheel_scoring")
    assert run.state == "success", states
    again = last_scoring(trained)["score"]
    assert again["rows_scored"] == 0 and again["partitions_skipped"] == BATCHES + 1
    assert predictions(lake)["transaction_id"].is_unique
