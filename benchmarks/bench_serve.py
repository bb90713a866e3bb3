"""``flywheel serve`` against MLflow's own ``mlflow models serve``, on the same model, over loopback.

Both are one uvicorn worker in their own process, serving the same registered version (the champion of a
fresh installation: demo events → ``flywheel repro``); MLflow's with ``--env-manager local``. Each is
measured in turn with the same client (httpx, keep-alive): latency (p50/p99) of single-row and
1,000-row requests sent one at a time, and requests/s of single-row requests from a bounded pool of
4 client threads sending a fixed count. Flywheel's requests carry its schema check of every field;
MLflow's are checked against the model signature. The scores of a 1,000-row request must agree.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_training_dag import BIN, _env, _installation, _land, _run

CLIENTS = 4


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start(args: list[str], env: dict[str, str], url: str, ready: str, log: Path) -> subprocess.Popen:
    import httpx

    with log.open("w") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{' '.join(args)} exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}{ready}", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    _stop(proc)
    raise RuntimeError(f"{' '.join(args)} did not answer {url}{ready} in 120 s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _latencies(url: str, body: bytes, count: int) -> list[float]:
    import httpx

    out = []
    with httpx.Client(timeout=120, headers={"content-type": "application/json"}) as http:
        for i in range(count + 5):
            start = time.perf_counter()
            answer = http.post(url, content=body)
            elapsed = time.perf_counter() - start
            answer.raise_for_status()
            if i >= 5:  # the first few warm the connection and the model
                out.append(elapsed * 1000)
    return out


def _throughput(url: str, body: bytes, per_client: int) -> float:
    import httpx

    def client(_: int) -> int:
        with httpx.Client(timeout=120, headers={"content-type": "application/json"}) as http:
            for _ in range(per_client):
                http.post(url, content=body).raise_for_status()
        return per_client

    start = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        sent = sum(pool.map(client, range(CLIENTS)))
    return sent / (time.perf_counter() - start)


def _measure(url: str, wrap: str, one: list[dict], many: list[dict], repeats: int) -> dict[str, float]:
    single, batch = json.dumps({wrap: one}).encode(), json.dumps({wrap: many}).encode()
    single_ms, batch_ms = _latencies(url, single, repeats * 10), _latencies(url, batch, repeats)
    return {
        "single_p50_ms": float(np.percentile(single_ms, 50)),
        "single_p99_ms": float(np.percentile(single_ms, 99)),
        "rows1000_p50_ms": float(np.percentile(batch_ms, 50)),
        "rows1000_p99_ms": float(np.percentile(batch_ms, 99)),
        "requests_per_s": _throughput(url, single, repeats * 5),
    }


def _scores(url: str, wrap: str, many: list[dict]) -> np.ndarray:
    import httpx

    body = httpx.post(url, json={wrap: many}, timeout=120).json()
    return np.array([p["probability"] for p in body["predictions"]])


def bench(rows: int = 4000, repeats: int = 40) -> dict[str, Any]:
    """Serve one champion both ways; latency and throughput, Flywheel / MLflow."""
    work = Path(tempfile.mkdtemp(prefix="flywheel-bench-serve-"))
    events = work / "events"
    home, params = _installation(work, "serve", events, epochs=3)
    env = _env(home, params)
    _run([str(BIN / "flywheel"), "produce", "--out", str(events), "--rows", str(rows), "--seed", "3"], env)
    _land(env)
    summary = json.loads(_run([str(BIN / "flywheel"), "repro", "--json"], env)[1].strip().splitlines()[-1])
    promotion = summary["promotion"]
    if not promotion.get("promoted"):  # a small demo model may miss the gate's floors: serving is measured
        force = [str(BIN / "flywheel"), "promote", "--force", "--reason", "serving benchmark", "--json"]
        promotion = json.loads(_run(force, env)[1].strip().splitlines()[-1])
    features = [c["name"] for c in __import__("yaml").safe_load(params.read_text())["schema"]["columns"]]
    records = [json.loads(line) for line in next(events.glob("*.jsonl")).read_text().splitlines()[:1000]]
    many = [{k: r.get(k) for k in features} for r in records]
    one = many[:1]

    flywheel_port, mlflow_port = _free_port(), _free_port()
    flywheel_url, mlflow_url = f"http://127.0.0.1:{flywheel_port}", f"http://127.0.0.1:{mlflow_port}"
    quiet = {**env, "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    model_uri = f"models:/{promotion['model_name']}/{promotion['version']}"
    results = {}
    proc = _start(
        [str(BIN / "flywheel"), "serve", "--port", str(flywheel_port)],
        quiet,
        flywheel_url,
        "/health",
        work / "flywheel-serve.log",
    )
    try:
        results["flywheel"] = _measure(f"{flywheel_url}/predict", "records", one, many, repeats)
        flywheel_scores = _scores(f"{flywheel_url}/predict", "records", many)
    finally:
        _stop(proc)
    args = [str(BIN / "mlflow"), "models", "serve", "-m", model_uri, "-p", str(mlflow_port)]
    proc = _start(
        [*args, "--host", "127.0.0.1", "--env-manager", "local"],
        quiet,
        mlflow_url,
        "/ping",
        work / "mlflow-serve.log",
    )
    try:
        results["mlflow"] = _measure(f"{mlflow_url}/invocations", "dataframe_records", one, many, repeats)
        mlflow_scores = _scores(f"{mlflow_url}/invocations", "dataframe_records", many)
    finally:
        _stop(proc)
    same = bool(np.allclose(flywheel_scores, mlflow_scores, rtol=1e-6))
    fly, base = results["flywheel"], results["mlflow"]
    ratios = {k: fly[k] / base[k] for k in fly}
    return {
        "name": "serve_latency",
        "flywheel": fly,
        "baseline": base,
        "ratio": ratios["requests_per_s"],
        "ratios": ratios,
        "notes": (
            f"ratio = requests/s Flywheel / `mlflow models serve` ({CLIENTS} loopback clients, single-row "
            f"requests, {CLIENTS * repeats * 5} in all); latency ratios (lower is better): "
            + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items() if k.endswith("_ms"))
            + f"; {repeats * 10} single-row and {repeats} 1,000-row requests each; both one uvicorn worker, "
            f"same model version; scores agree: {same}. Machine load from other processes is not controlled."
        ),
        "scores_agree": same,
        "cpu_count": os.cpu_count(),
    }
