"""A broker or S3 endpoint that is down, before or during a run: a clear error naming the endpoint, nothing
partial visible in the landing tier, nothing committed; the next run after the outage loses nothing."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import time

import pytest

from tests.support.sources import (
    SESSION_TIMEOUT_MS,
    flywheel_cli,
    last_json,
    make_source_install,
    unique_topic,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def nothing_landed(install) -> bool:
    lake = install.lake()
    leftovers = glob.glob(f"{lake.path('landing')}/**/part-*", recursive=True)
    return lake.complete_partitions("landing") == [] and leftovers == []


def test_an_unreachable_broker_fails_fast_naming_it(tmp_path, kafka_client):
    from pipelines.demo.services.supervisor import free_port
    from pipelines.ingest import kafka
    from pipelines.ingest.endpoints import KafkaEndpoint, SourceUnavailable

    port = free_port()
    install = make_source_install(
        tmp_path, sources=["kafka"], kafka={"connect_timeout_s": 1, "client": kafka_client}
    )

    with pytest.raises(SourceUnavailable, match=f"Kafka broker at 127.0.0.1:{port} is not reachable"):
        kafka.run(install.params(), install.settings(), "run-1", KafkaEndpoint(f"127.0.0.1:{port}"))
    assert nothing_landed(install)


def test_a_broker_that_dies_mid_run_fails_the_run_and_the_next_run_loses_nothing(
    tmp_path, request, kafka_client
):
    from pipelines.demo import generator as produce
    from pipelines.demo import publish, services
    from pipelines.demo.services.supervisor import free_port

    state, port = tmp_path / "services", free_port()
    broker = services.up(["tansu"], state, ports={"tansu": port})["tansu"]["endpoint"]
    try:
        from pipelines.ingest.endpoints import KafkaEndpoint

        topic = unique_topic(request)
        keys, values, _ = produce.messages(40_000, seed=41)
        padding = b',"note":"' + b"x" * 1000 + b'"}'  # big messages: the client's prefetch holds few of them
        publish.send(topic, keys, [v[:-1] + padding for v in values], KafkaEndpoint(broker))
        install = make_source_install(
            tmp_path,
            sources=["kafka"],
            kafka={
                "topics": [topic],
                "group_id": "g",
                "session_timeout_ms": SESSION_TIMEOUT_MS,
                "poll_records": 20,
                "chunk_rows": 500,
                "workers": 0,
                "idle_timeout_s": 3,
                "connect_timeout_s": 2,
                "client": kafka_client,
            },
        )  # slow on purpose
        landing = install.lake().partition("landing", "run-1", "kafka")
        proc = subprocess.Popen(
            flywheel_cli("ingest", "--source", "kafka", "--run-id", "run-1", "--json"),
            env=install.env(FLYWHEEL_KAFKA_BOOTSTRAP=broker),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while not glob.glob(f"{landing}/part-*.parquet") and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(services.status(state)["tansu"]["pid"], signal.SIGKILL)  # the broker dies mid-drain
        out, err = proc.communicate(timeout=120)
    finally:
        services.down(None, state)

    assert proc.returncode == 2, err[-2000:]
    assert f"Kafka broker at {broker}" in last_json(out)["error"]
    assert nothing_landed(install)  # the parts written before the outage are gone, no manifest


def test_an_unreachable_s3_endpoint_fails_naming_it(tmp_path):
    from pipelines.demo.services.supervisor import free_port
    from pipelines.ingest import s3
    from pipelines.ingest.endpoints import S3Endpoint, SourceUnavailable

    endpoint = S3Endpoint(
        f"http://127.0.0.1:{free_port()}", "k", "s", region="us-east-1", connect_timeout_s=1, max_attempts=1
    )
    install = make_source_install(tmp_path, sources=["s3"], s3={"url": "s3://nowhere/events"})

    with pytest.raises(SourceUnavailable, match=f"S3 endpoint {endpoint.endpoint_url}: listing s3://nowhere"):
        s3.run(install.params(), install.settings(), "run-1", endpoint)
    assert nothing_landed(install)


def test_an_s3_endpoint_that_dies_mid_run_leaves_nothing_and_the_next_run_lands_everything(
    tmp_path, monkeypatch
):
    from pipelines.demo import generator as produce
    from pipelines.demo import services
    from pipelines.demo.services.supervisor import free_port
    from pipelines.ingest import s3
    from pipelines.ingest.endpoints import S3Endpoint, SourceUnavailable

    state = tmp_path / "services"
    url = services.up(["s3"], state, ports={"s3": free_port()})["s3"]["endpoint"]
    try:
        endpoint = S3Endpoint(url, "k", "s", region="us-east-1", connect_timeout_s=1, max_attempts=1)
        produce.produce("s3://flaky/events", rows=900, files=3, storage_options=endpoint.storage_options())
        install = make_source_install(tmp_path, sources=["s3"], s3={"url": "s3://flaky/events"})
        listed = s3.list_objects

        def list_then_fail(*args, **kwargs):
            found = listed(*args, **kwargs)
            services.down(["s3"], state)  # the endpoint goes away between listing and reading
            return found

        monkeypatch.setattr(s3, "list_objects", list_then_fail)
        with pytest.raises(SourceUnavailable, match=rf"S3 endpoint {url}: reading s3://flaky/events/demo-\d"):
            s3.run(install.params(), install.settings(), "run-1", endpoint)
        assert nothing_landed(install)
        assert s3.read_state(install.lake())["objects"] == {}  # nothing remembered: the next run reads all
    finally:
        services.down(None, state)


def test_the_ingest_task_retries_then_fails_naming_the_broker(dagbag, tmp_path, monkeypatch, capfd):
    import os

    from pipelines.demo.services.supervisor import free_port
    from tests.support.install import run_dag

    port = free_port()
    install = make_source_install(tmp_path, sources=["kafka"], kafka={"connect_timeout_s": 1})
    for key, value in install.env().items():
        if key.startswith("FLYWHEEL_") and os.environ.get(key) != value:
            monkeypatch.setenv(key, value)
    monkeypatch.setenv(
        "AIRFLOW_CONN_FLYWHEEL_KAFKA", f'{{"conn_type": "generic", "host": "127.0.0.1", "port": {port}}}'
    )

    run, states = run_dag(dagbag, "flywheel_ingest")

    assert run.state == "failed" and states["ingest"] == "failed"
    ingest = next(ti for ti in run.get_task_instances() if ti.task_id == "ingest")
    assert ingest.try_number == 3  # two retries, with backoff, before it failed
    out, err = capfd.readouterr()  # dag.test() runs the tasks here: their logs are this process's output
    assert (out + err).count(f"SourceUnavailable: Kafka broker at 127.0.0.1:{port} is not reachable") >= 3
    assert nothing_landed(install)
