"""The loop on the production topology with faults: Celery workers, PostgreSQL, Redis, MLflow with auth, S3.

One story on one stack (bringing a stack up costs minutes; CI gives the tier about 20), driven through
Airflow's REST API as a person would, each fault injected by PID as a dying host or server would:

1. events on Kafka → ``flywheel_ingest`` (the lake on S3) → ``validated_events`` → ``flywheel_drift``
   (skips: no champion yet);
2. the first model by hand: ``train`` runs on the ``gpu`` queue's worker; that worker is killed (``kill -9``,
   its task with it) mid-training; the scheduler notices the lost task, the restarted worker runs the
   retry, which resumes from the checkpoint on its disk, and the run succeeds: the champion moves;
3. drifted events, whose ingest loses PostgreSQL (stopped by PID while the task drains Kafka, then started
   again): the consumer group's offsets move only behind a complete landing partition, and every event
   reaches the validated tier exactly once; → ``drift_detected`` → the asset-triggered
   ``flywheel_training``, whose ``promote`` loses the MLflow server: no alias moves, the failure names the
   server, and the retry succeeds once it is back;
4. lineage from a client that shares no disk with the workers: S3 partitions and the git commit; MLflow
   refuses an anonymous alias change.

The workers share no disk: the DVC workspace travels through its git remote and the DVC remote on S3.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import psutil
import pytest

from pipelines import stack as topology
from pipelines.common.lake import MANIFEST
from pipelines.demo import airflow_runner as runner
from pipelines.demo.airflow_runner.processes import wait_parsed
from pipelines.demo.airflow_runner.rest import task_log, wait_created
from pipelines.stack.stage import supervisor
from tests.support.install import ROOT
from tests.support.stack import (
    AIRFLOW_ENV,
    TIMEOUT_S,
    kafka_offsets,
    landing_files,
    landing_manifests,
    produce,
    validated_keys,
)

pytestmark = [pytest.mark.stack, pytest.mark.slow]

TRAINING = "flywheel_training"
INGEST = "flywheel_ingest"


def task_queues(api, dag_id: str, run_id: str) -> dict[str, str]:
    """``{task: queue}`` of a run's task instances."""
    body = api.call("GET", runner.run_path(dag_id, run_id) + "/taskInstances", limit=100)
    return {ti["task_id"]: ti.get("queue") for ti in body["task_instances"]}


def tries(api, dag_id: str, run_id: str, task: str) -> int:
    return int(api.call("GET", runner.run_path(dag_id, run_id) + f"/taskInstances/{task}")["try_number"])


def wait_task(api, dag_id: str, run_id: str, task: str, states: set[str]) -> None:
    """Poll until ``task`` of the run is in one of ``states``."""
    deadline = time.monotonic() + TIMEOUT_S
    while (status := runner.run_status(api, dag_id, run_id)).tasks.get(task) not in states:
        assert not status.finished, f"{dag_id} {run_id} ended ({status.state}) before {task} was {states}"
        assert time.monotonic() < deadline, f"{dag_id}.{task} was not {states} within {TIMEOUT_S} s"
        time.sleep(0.5)


def start_training(api, conf: dict) -> runner.RunStatus:
    """A manual training run; the paused DAG is unpaused after it, the run taking its due slot."""
    from pipelines.demo.airflow_runner.rest import known_dag
    from pipelines.demo.airflow_runner.runs import due_slot

    dag = known_dag(api, TRAINING)
    slot = due_slot(dag, datetime.now(UTC)) if dag.get("is_paused") else None
    run = runner.trigger(api, TRAINING, conf, slot)
    if dag.get("is_paused"):
        api.call("PATCH", f"/dags/{TRAINING}", {"is_paused": False})
    return run


def restart_missing(stack) -> None:
    """``flywheel stack up`` again: it starts the parts that are not running, and only those."""
    topology.up(stack.state, airflow_env=AIRFLOW_ENV, timeout_s=TIMEOUT_S)


def alias(client, name: str, which: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, which).version)
    except MlflowException:
        return None


def unauthenticated(url: str, body: dict) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def kill_gpu_worker_mid_training(stack, run_id: str) -> None:
    """Once ``train`` has checkpointed an epoch, SIGKILL the gpu worker and its task; start it again."""
    wait_task(stack.api, TRAINING, run_id, "train", {"running"})
    checkpoints = stack.state / "airflow" / "worker-gpu" / "flywheel" / "checkpoints"
    deadline = time.monotonic() + TIMEOUT_S
    while not list(checkpoints.glob("*/checkpoint.pt")):
        assert time.monotonic() < deadline, "the train task wrote no checkpoint"
        time.sleep(0.2)
    worker = psutil.Process(supervisor(stack.layout).status()["worker-gpu"]["pid"])
    for proc in [worker, *worker.children(recursive=True)]:
        proc.send_signal(signal.SIGKILL)
    psutil.wait_procs([worker], timeout=10)
    restart_missing(stack)


def ingest_through_a_postgres_restart(stack) -> runner.RunStatus:
    """A ``flywheel_ingest`` run whose metadata database stops (by PID) while its ingest task drains Kafka.

    While PostgreSQL is down the task keeps draining (it needs Kafka and S3, not the database); the
    consumer group's offsets may move only once the landing manifest is on S3. PostgreSQL comes back with
    ``flywheel stack up``, as do the Airflow parts that lost their database; the run then ends, after a retry
    if the task could not report to Airflow. A run that still failed is triggered again: its partition is
    complete, so the new run lands nothing twice. Returns the run that succeeded.
    """
    api = stack.api
    before, _ = kafka_offsets(stack)
    run = runner.trigger(api, INGEST, None, None)
    wait_task(api, INGEST, run.run_id, "ingest", {"running"})
    deadline = time.monotonic() + TIMEOUT_S
    while not parts_in(files := landing_files(stack, run.run_id)):
        assert MANIFEST not in files, f"the ingest of {run.run_id} landed before a part was seen: {files}"
        assert time.monotonic() < deadline, f"the ingest of {run.run_id} landed no part within {TIMEOUT_S} s"
        time.sleep(0.05)
    assert supervisor(stack.layout).stop("postgres", timeout_s=30) == "stopped"
    files = landing_files(stack, run.run_id)
    assert MANIFEST not in files, (
        f"PostgreSQL stopped after the drain ended, not during it: {len(files)} files"
    )
    while True:  # database down: the drain goes on; offsets move only behind a complete partition
        committed, _ = kafka_offsets(stack)
        landed = landed_up_to(
            landing_manifests(stack)
        )  # read after the offsets: a commit follows its manifest
        ahead = {tp: o for tp, o in committed.items() if o > before.get(tp, 0) and o > landed.get(tp, 0)}
        assert not ahead, f"offsets {ahead} committed beyond the landing manifests' {landed}"
        if committed != before:
            break
        assert time.monotonic() < deadline, (
            f"the ingest of {run.run_id} committed nothing within {TIMEOUT_S} s"
        )
        time.sleep(0.2)
    done = follow_restarting(stack, INGEST, run.run_id)
    print(f"ingest {run.run_id} through a PostgreSQL restart: {done.state}, tries {done.tries}")
    if done.state == "success":
        return done
    again = runner.trigger(api, INGEST, None, None)  # the run's retries are spent; the next run finishes it
    done = follow_restarting(stack, INGEST, again.run_id)
    assert done.state == "success", f"the ingest after the PostgreSQL restart: {done}"
    return done


def parts_in(files: list[str]) -> list[str]:
    return [name for name in files if name.startswith("part-")]


def landed_up_to(manifests: dict[str, dict]) -> dict[str, int]:
    """Per ``topic:partition``, the next offset after the last record landed by any of the manifests."""
    upto: dict[str, int] = {}
    for manifest in manifests.values():
        for o in manifest["offsets"]:
            name = f"{o['topic']}:{o['partition']}"
            upto[name] = max(upto.get(name, 0), int(o["next"]))
    return upto


def follow_restarting(stack, dag_id: str, run_id: str) -> runner.RunStatus:
    """Wait for a run to end while restarting the stack's parts that died (as a process manager would)."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        assert time.monotonic() < deadline, f"{dag_id} {run_id} did not end within {TIMEOUT_S} s"
        records = supervisor(stack.layout).status()
        if "postgres" not in records or not all(r["alive"] for r in records.values()):
            with contextlib.suppress(topology.StackError):  # a part may die while the others start
                restart_missing(stack)
            continue
        with contextlib.suppress(runner.AirflowRunError):  # the API answers 500 until its database is back
            status = runner.run_status(stack.api, dag_id, run_id)
            if status.finished:
                return status
        time.sleep(1.0)


def test_the_loop_on_celery_workers_survives_a_killed_worker_a_postgres_restart_and_an_mlflow_outage(
    stack, monkeypatch
):
    api = stack.api
    for key, value in stack.env.items():
        monkeypatch.setenv(key, value)  # the MLflow client authenticates with the stack's credentials
    name, client = stack.model_name(), stack.mlflow()
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    wait_parsed(api, "flywheel_drift", TIMEOUT_S, lambda: None)
    runner.unpause(api, "flywheel_drift", out=None)
    now = datetime.now(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)

    # 1. clean events: ingested from Kafka into the lake on S3; the drift check skips (no champion yet)
    produced = produce(stack, "clean", rows=4000, seed=3, start=today - timedelta(days=12), end=today)[
        "messages"
    ]
    _, drift = runner.trigger_and_follow(api, "flywheel_ingest", then=["flywheel_drift"], timeout_s=TIMEOUT_S)
    assert drift.tasks == {"check": "skipped", "trigger_retrain": "skipped"}

    # 2. the first model; the gpu worker dies mid-training, the retry resumes, the champion moves
    first = start_training(api, {"epochs": 12})
    kill_gpu_worker_mid_training(stack, first.run_id)
    done = runner.wait_run(api, TRAINING, first.run_id, TIMEOUT_S)
    assert done.state == "success" and tries(api, TRAINING, first.run_id, "train") >= 2
    queues = task_queues(api, TRAINING, first.run_id)
    assert queues.pop("train") == "gpu" and set(queues.values()) == {"default"}, queues
    homes = {w: stack.state / "airflow" / w / "flywheel" / "workspace" for w in ("worker", "worker-gpu")}
    assert all((home / ".git").is_dir() for home in homes.values()), "each worker cloned its own workspace"
    champion = alias(client, name, "champion")
    assert champion == "1"
    note = api.call("GET", runner.run_path(TRAINING, first.run_id))["note"]  # set by record, as the UI shows
    assert note and note.startswith("v1 promoted"), note

    # 3. drifted events, ingested while PostgreSQL restarts: each lands once, offsets follow the landing;
    #    → drift_detected → the asset-triggered retrain; MLflow goes away during its promote
    produced += produce(stack, "drifted", rows=8000, seed=5, start=today, end=datetime.now(UTC), drift=True)[
        "messages"
    ]
    ingest = ingest_through_a_postgres_restart(stack)
    keys = validated_keys(stack)
    assert len(keys) == len(set(keys)) == produced, (
        f"{len(keys)} rows, {len(set(keys))} keys, {produced} sent"
    )
    committed, end = kafka_offsets(stack)
    assert committed == end, f"committed {committed}, end offsets {end}"
    after = ingest.start_date or ""
    drift_run = runner.wait_asset_triggered(api, "flywheel_drift", after, TIMEOUT_S, upstream=ingest)
    assert drift_run.tasks == {"check": "success", "trigger_retrain": "success"}
    query = {"run_type": "asset_triggered", "run_after_gte": drift_run.start_date}
    retrain = wait_created(api, TRAINING, "the drift retrain", query, TIMEOUT_S)
    wait_task(api, TRAINING, retrain.run_id, "promote", {"running"})
    assert supervisor(stack.layout).stop("mlflow", timeout_s=10) == "stopped"
    wait_task(api, TRAINING, retrain.run_id, "promote", {"up_for_retry", "failed"})
    log = task_log(api, runner.run_status(api, TRAINING, retrain.run_id), "promote")
    assert stack.layout.tracking_uri in log, log[-3000:]  # the failure names the server
    restart_missing(stack)
    assert alias(client, name, "champion") == champion, "no alias moved while MLflow was down"
    done = runner.wait_run(api, TRAINING, retrain.run_id, TIMEOUT_S)
    assert done.state == "success" and tries(api, TRAINING, retrain.run_id, "promote") >= 2
    version = max(client.search_model_versions(f"name='{name}'"), key=lambda v: int(v.version))
    assert version.version == "2" and version.tags["flywheel.trigger"] == "drift"
    now_champion = alias(client, name, "champion")
    if now_champion != champion:  # the gate promoted the retrain: the alias moved, the old one kept
        assert alias(client, name, "previous_champion") == champion

    # 4. lineage from a client that shares no disk with the workers: S3 partitions and the code's git commit
    proc = stack.flywheel("lineage", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    chain = json.loads(proc.stdout.strip().splitlines()[-1])
    assert chain["run"]["git_commit"] == head.stdout.strip()  # the commit the workers ran
    assert chain["partitions"] and all("flywheel/lake/" in json.dumps(p) for p in chain["partitions"])
    assert chain["workspace_commit"] and chain["run"]["airflow"]["dag_id"] == TRAINING

    # MLflow refuses an anonymous alias change; the champion stays where it was
    url = f"{stack.layout.tracking_uri}/api/2.0/mlflow/registered-models/alias"
    assert unauthenticated(url, {"name": name, "alias": "champion", "version": "1"}) == 401
    assert alias(client, name, "champion") == now_champion

    # -- metrics: what the stack's Prometheus scraped from Flywheel's exporter, once the story is over --
    prometheus_saw_the_loop(stack, client, name, retrain_started=done.start_date)


def prometheus_saw_the_loop(stack, client, name: str, retrain_started: str | None) -> None:
    """The stack's Prometheus holds Flywheel's series with the values a person checks after the story.

    A scrape that began after the story ended: the exporter answered, every part of it was read (the
    registry through MLflow's auth, the lake on S3), the champion is the registry's, Kafka's rows
    landed, the drift check's share is a share, and the training report is no older than the retrain.
    """
    from tests.support.stack import prometheus_query, wait_scraped_after

    wait_scraped_after(stack, "flywheel", time.time())
    ended = time.time()

    def values(promql: str) -> dict[tuple[tuple[str, str], ...], float]:
        return {tuple(sorted(labels.items())): value for labels, value in prometheus_query(stack, promql)}

    assert set(values('up{job="flywheel"}').values()) == {1.0}, "Prometheus could not scrape the exporter"
    errors = values("flywheel_metrics_errors")
    assert errors and set(errors.values()) == {0.0}, f"parts the exporter could not read: {errors}"
    champion = alias(client, name, "champion")
    scraped = list(values(f'flywheel_champion_version{{model="{name}"}}').values())
    assert scraped == [float(champion)], (
        f"Prometheus's champion of {name} is {scraped}; the registry's v{champion}"
    )
    [landed] = values('flywheel_rows_landed_total{source="kafka"}').values()
    assert landed > 0, "Prometheus shows no rows landed from Kafka"
    [share] = values("flywheel_drift_share").values()
    assert 0 < share <= 1, f"the last drift check (it asked for the retrain) shows a drift share of {share}"
    ages = {dict(k)["dag_id"]: v for k, v in values("flywheel_last_run_age_seconds").items()}
    assert {"flywheel_ingest", "flywheel_drift", "flywheel_training"} <= set(ages), ages
    since_retrain = ended - datetime.fromisoformat(str(retrain_started)).timestamp()
    assert 0 <= ages["flywheel_training"] <= since_retrain, (
        f"flywheel_training's last report is {ages['flywheel_training']:.0f} s old; the retrain began "
        f"{since_retrain:.0f} s before the scrape"
    )
