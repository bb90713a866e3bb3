"""Kafka ingestion throughput and memory: Flywheel's consume → land Parquet → manifest → commit against a
bare poll loop over the same topic, in the same run, on a local Apache Kafka 2.3 broker, for each client.

The broker is started by ``pipelines.demo.services`` (free ports, a temporary state folder) and stopped at
the end. ``messages`` demo events go to a 3-partition topic; then, alternately, ``repeats`` times each, for
kafka-python (the default client) and then confluent-kafka (``ingest.kafka.client``):

- **Flywheel**: ``flywheel ingest --source kafka`` in a fresh process with a fresh consumer group: the
  run's own phases (connect, join, drain, land, manifests, commit) are timed; one decode-and-land child
  with kafka-python, two with confluent-kafka (``ingest.kafka.workers``);
- **baseline**: a fresh process running the bare loop of the same client (same consumer settings, a fresh
  group): kafka-python's ``KafkaConsumer`` → ``subscribe`` → ``poll(max_records=...)``, or
  confluent-kafka's ``Consumer`` → ``subscribe`` → ``consume(num_messages=...)``, until every message
  was returned, counting records and doing nothing else.

Both report messages/s from consumer creation to the end (Flywheel: to the committed offsets), the peak
RSS and PSS of the process tree (Flywheel's includes its decode-and-land workers, forks of the consumer:
RSS counts the pages they share twice, PSS once), sampled every 10 ms, and the CPU time per message of
the whole tree and of the consuming process alone. The bare loops import their client alone. The best run
of each counts. The top-level ``flywheel``/``baseline``/``ratio`` are kafka-python's;
``variants["confluent-kafka"]`` holds the same for confluent-kafka, with ``vs_kafka_python`` = Flywheel
with confluent-kafka / Flywheel with kafka-python msgs/s. Peak memory at 100k and 1M messages shows that
it stays flat. The ratio depends on free cores: Flywheel's decoding runs in a second process, so on a
busy machine it competes with the consumer.

The **ceiling** (kafka-python): the bare loop again, beside a process that decodes and lands as many
demo messages as the loop reads, at the bare loop's pace, with Flywheel's own decoder
(:func:`decode_load`: batches unpickled, typed, landed as Parquet parts of ``chunk_rows``), the work
Flywheel's decode-and-land child does. ``ceiling_ratio`` = that loop's msgs/s / the bare loop's: what a
consumer with no overhead of its own reaches on this machine while its messages are decoded beside it.
``ratio_to_ceiling`` = Flywheel / that loop: the part of the gap that Flywheel's consumer itself makes.

    python -m benchmarks.bench_kafka_ingest --messages 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
TOPIC = "bench.events"
PARTITIONS = 3
PSS_EVERY = 20  # samples (of 10 ms) between two PSS readings

# The bare loops import their client and nothing of Flywheel: Flywheel's modules bring pandas and pyarrow
# (about 100 MB of RSS, and a larger heap for the garbage collector to walk), which a bare client does
# not need. They get the consumer settings Flywheel uses, computed here, as JSON.
_BARE_LOOP = """
import json, sys, time
from kafka import KafkaConsumer

settings, topics = json.loads(sys.argv[1]), json.loads(sys.argv[2])
poll_records, expected = int(sys.argv[3]), int(sys.argv[4])
start = time.perf_counter()
consumer = KafkaConsumer(**settings)
consumer.subscribe(topics)
seen = 0
while seen < expected:
    for records in consumer.poll(timeout_ms=500, max_records=poll_records).values():
        seen += len(records)
seconds = time.perf_counter() - start
consumer.close(autocommit=False)
print(json.dumps({"consumed": seen, "seconds": seconds, "modules": len(sys.modules)}))
"""


_BARE_CONFLUENT_LOOP = """
import json, sys, time
from confluent_kafka import Consumer

settings, topics = json.loads(sys.argv[1]), json.loads(sys.argv[2])
poll_records, expected = int(sys.argv[3]), int(sys.argv[4])
start = time.perf_counter()
consumer = Consumer(settings)
consumer.subscribe(topics)
seen = 0
while seen < expected:
    for message in consumer.consume(num_messages=poll_records, timeout=0.5):
        if message.error() is None:
            seen += 1
seconds = time.perf_counter() - start
consumer.close()
print(json.dumps({"consumed": seen, "seconds": seconds, "modules": len(sys.modules)}))
"""
BARE_LOOPS = {"kafka-python": _BARE_LOOP, "confluent-kafka": _BARE_CONFLUENT_LOOP}
CLIENTS = ("kafka-python", "confluent-kafka")
# decode-and-land children of each client's Flywheel run: kafka-python's consumer is the bottleneck and
# one child keeps up; confluent-kafka fetches faster than one child decodes (docs/sources.md)
WORKERS = {"kafka-python": 1, "confluent-kafka": 2}


def decode_load(messages: int, rate: float, lake: Path, distinct: int = 10) -> int:
    """Decode and land ``messages`` demo messages at ``rate`` messages/s at most, as Flywheel's
    decode-and-land child does for a consumer that reads at that rate; returns the rows landed.

    ``distinct`` batches of ``DECODE_ROWS`` messages (what the child gets at a time) are generated
    first and pickled as the hand-over pickles them; they are then unpickled, decoded and typed in
    turn, and every ``chunk_rows`` messages land as a Parquet part under ``lake``. Prints ``ready``
    when the pacing starts.
    """
    import pickle

    import pandas as pd

    from pipelines.common.config import load_params
    from pipelines.demo import generator as demo
    from pipelines.ingest.kafka import DECODE_ROWS as BATCH
    from pipelines.ingest.kafka import ChunkBuilder, ChunkTarget
    from pipelines.ingest.kafka_clients import Segment

    params = load_params(ROOT / "params.yaml")
    keys, clean, _ = demo.messages(distinct * BATCH, seed=7, batch="load")
    values: list[bytes | None] = list(clean)
    batches = []
    for lo in range(0, distinct * BATCH, BATCH):
        segments = []
        for p in range(PARTITIONS):
            taken = slice(lo + p, lo + BATCH, PARTITIONS)
            offsets = list(range(lo, lo + len(values[taken])))
            segments.append(Segment(TOPIC, p, offsets, keys[taken], values[taken]))
        batches.append(pickle.dumps(segments, protocol=pickle.HIGHEST_PROTOCOL))
    now = pd.Timestamp.now(tz="UTC")
    builder = ChunkBuilder(
        ChunkTarget(
            str(lake), str(lake / "landing"), str(lake / "quarantine"), params.schema, params.ingest, now
        )
    )
    chunk_rows, landed, pending, part = params.ingest.kafka.chunk_rows, 0, 0, 0
    print("ready", flush=True)
    start = time.perf_counter()
    for done in range(0, messages, BATCH):
        ahead = start + done / rate - time.perf_counter()
        if ahead > 0:
            time.sleep(ahead)
        builder.add(pickle.loads(batches[(done // BATCH) % distinct]))
        pending += BATCH
        if pending >= chunk_rows or done + BATCH >= messages:
            landed += builder.land(part).landed
            part, pending = part + 1, 0
    return landed


def produce(bootstrap: str, messages: int) -> float:
    """Send ``messages`` clean demo events in batches (bounded memory); seconds taken."""
    from pipelines.demo import generator as demo
    from pipelines.demo import publish
    from pipelines.ingest.endpoints import KafkaEndpoint

    endpoint = KafkaEndpoint(bootstrap)
    start = time.perf_counter()
    step = 100_000
    for seed, lo in enumerate(range(0, messages, step)):
        keys, values, _ = demo.messages(min(step, messages - lo), seed=seed, batch="bench")
        publish.send(TOPIC, keys, values, endpoint, PARTITIONS)
    return time.perf_counter() - start


def watch(argv: list[str], env: dict[str, str]) -> tuple[str, dict]:
    """Run a process to the end; its stdout, and the peak RSS and PSS (MB) and CPU seconds of it and its
    children. RSS counts a page shared by two processes in each (a forked worker shares its parent's
    libraries), PSS counts it once, divided between them: the memory the tree really takes.

    ``peak_rss_mb_by_process`` has each process's own peak: the process itself (``run``, the consumer)
    and the largest of its children (``decoder``).

    RSS is sampled every 10 ms (a cheap read of ``statm``), PSS every 200 ms: reading it walks every
    mapping of a process, and at 10 ms that took 30-40 % of a core from the two measured on two cores."""
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT
    )
    root, peak, peak_pss = psutil.Process(proc.pid), 0, 0
    cpu: dict[int, float] = {}
    own_peak: dict[int, int] = {}
    samples = 0
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            rss = {p.pid: p.memory_info().rss for p in tree}
            peak = max(peak, sum(rss.values()))
            if samples % PSS_EVERY == 0:  # PSS walks every mapping: ~1 ms a process, too dear each 10 ms
                peak_pss = max(peak_pss, sum(p.memory_full_info().pss for p in tree))
            samples += 1
            for p in tree:
                times = p.cpu_times()
                cpu[p.pid] = times.user + times.system
                own_peak[p.pid] = max(own_peak.get(p.pid, 0), rss[p.pid])
        except psutil.Error:
            pass
        time.sleep(0.01)
    out = proc.stdout.read() if proc.stdout else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[2:5]} failed with exit status {proc.returncode}: {out[-2000:]}")
    by_role = {"run": own_peak.pop(proc.pid, 0) / 2**20}
    if own_peak:
        by_role["decoder"] = max(own_peak.values()) / 2**20
    return out, {
        "peak_rss_mb": peak / 2**20,
        "peak_pss_mb": peak_pss / 2**20,
        "cpu_s": sum(cpu.values()),
        "consumer_cpu_s": cpu.get(proc.pid, 0.0),
        "peak_rss_mb_by_process": by_role,
    }


def params_file(folder: Path, group: str, client: str) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["ingest"]["sources"] = ["kafka"]
    params["ingest"]["kafka"].update(
        topics=[TOPIC], group_id=group, session_timeout_ms=6000, client=client, workers=WORKERS[client]
    )
    path = folder / f"params-{group}.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def flywheel_run(folder: Path, env: dict[str, str], group: str, messages: int, client: str) -> dict:
    params = params_file(folder, group, client)
    run_env = {**env, "FLYWHEEL_PARAMS": str(params), "FLYWHEEL_HOME": str(folder / group)}
    out, usage = watch(
        [sys.executable, "-m", "pipelines.cli", "ingest", "--source", "kafka", "--json"], run_env
    )
    summary = json.loads(out.strip().splitlines()[-1])["by_source"]["kafka"]
    if summary["consumed"] != messages:
        raise RuntimeError(f"Flywheel consumed {summary['consumed']} of {messages}")
    seconds = sum(summary["seconds"].values())
    return {
        "msgs_per_s": messages / seconds,
        "seconds": seconds,
        **usage,
        "phases": summary["seconds"],
        "parts": summary["parts"],
    }


def bare_settings(params: Path, env: dict[str, str], client: str) -> tuple[dict, list[str], int]:
    """The consumer settings, topics and poll size Flywheel's run with ``params`` and ``env`` uses, for a
    bare loop (the brokers and their security settings from ``env``, as Flywheel reads them)."""
    from pipelines.common.config import load_params
    from pipelines.ingest.endpoints import KafkaEndpoint
    from pipelines.ingest.kafka_clients import kafka_python_config, librdkafka_config

    cfg = load_params(params).ingest.kafka
    endpoint = KafkaEndpoint.from_env(env)
    build = kafka_python_config if client == "kafka-python" else librdkafka_config
    return build(endpoint, cfg), list(cfg.topics), cfg.poll_records


def bare_run(folder: Path, env: dict[str, str], group: str, messages: int, client: str) -> dict:
    settings, topics, poll_records = bare_settings(params_file(folder, group, client), env, client)
    argv = [json.dumps(settings), json.dumps(topics), str(poll_records), str(messages)]
    out, usage = watch([sys.executable, "-c", BARE_LOOPS[client], *argv], env)
    result = json.loads(out.strip().splitlines()[-1])
    return {
        "msgs_per_s": messages / result["seconds"],
        "seconds": result["seconds"],
        "modules": result["modules"],
        **usage,
    }


def bare_run_beside_decoding(
    folder: Path, env: dict[str, str], group: str, messages: int, rate: float
) -> dict:
    """:func:`bare_run` of kafka-python while :func:`decode_load` decodes ``messages`` at ``rate`` in a
    process of its own, started first and stopped when the loop ends."""
    lake = folder / f"load-{group}"
    load = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.bench_kafka_ingest",
            "--decode-load",
            str(messages),
            "--rate",
            str(rate),
            "--lake",
            str(lake),
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        if load.stdout is None or load.stdout.readline().strip() != "ready":
            load.wait(timeout=60)
            raise RuntimeError(f"the decode load did not start: {load.stderr.read() if load.stderr else ''}")
        return bare_run(folder, env, group, messages, "kafka-python")
    finally:
        load.kill()
        load.wait()


def bench(messages: int = 200_000, repeats: int = 2) -> dict:
    """Best-of-``repeats`` msgs/s and peak RSS of Flywheel's Kafka ingestion and of the bare poll loop,
    for each client, in one run on one broker and topic."""
    from pipelines.demo import services
    from pipelines.demo.services.supervisor import free_port

    with tempfile.TemporaryDirectory(prefix="flywheel-bench-kafka-") as tmp:
        folder = Path(tmp)
        ports = {"zookeeper": free_port(), "kafka": free_port()}
        bootstrap = services.up(["kafka"], folder / "services", ports=ports)["kafka"]["endpoint"]
        try:
            produced = produce(bootstrap, messages)
            env = {**os.environ, "FLYWHEEL_KAFKA_BOOTSTRAP": bootstrap, "PYTHONPATH": str(ROOT)}
            runs: dict[str, dict[str, list[dict]]] = {c: {"flywheel": [], "baseline": []} for c in CLIENTS}
            runs["kafka-python"]["beside_decoding"] = []
            for i in range(repeats):
                for client in CLIENTS:
                    bare = bare_run(folder, env, f"bare-{client}-{i}", messages, client)
                    runs[client]["baseline"].append(bare)
                    # the ceiling: the same loop with its messages decoded beside it
                    if client == "kafka-python":
                        runs[client]["beside_decoding"].append(
                            bare_run_beside_decoding(folder, env, f"beside-{i}", messages, bare["msgs_per_s"])
                        )
                    runs[client]["flywheel"].append(
                        flywheel_run(folder, env, f"flywheel-{client}-{i}", messages, client)
                    )
        finally:
            services.down(None, folder / "services")
    sides = {client: compare(runs[client], messages) for client in CLIENTS}
    default, confluent = sides["kafka-python"], sides["confluent-kafka"]
    confluent["vs_kafka_python"] = confluent["flywheel"]["msgs_per_s"] / default["flywheel"]["msgs_per_s"]
    confluent["bare_vs_kafka_python"] = (
        confluent["baseline"]["msgs_per_s"] / default["baseline"]["msgs_per_s"]
    )
    label = f"{messages // 1_000_000}m" if messages >= 1_000_000 else f"{messages // 1000}k"
    return {
        "name": f"kafka_ingest_{label}",
        **default,
        "variants": {"confluent-kafka": confluent},
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "messages": messages,
        "all_runs": runs,
        "produce_seconds": produced,
        "notes": f"{messages:,} demo events (~230 bytes of JSON each) on a {PARTITIONS}-partition topic "
        "of a local Apache Kafka 2.3 broker; Flywheel = consume → decode and type (row rules) → "
        "land Parquet parts → manifests → commit, in a fresh process (ingest.kafka.workers: 1 child with "
        "kafka-python, 2 with confluent-kafka); "
        "baseline = the same client's bare poll loop (kafka-python's poll, confluent-kafka's consume) with "
        "the same consumer settings, in a fresh process importing the client alone; "
        f"best of {repeats}. The main row is kafka-python "
        "(the default client), the (confluent-kafka) row the same with ingest.kafka.client: confluent-kafka; "
        "its vs_kafka_python = Flywheel with confluent-kafka / Flywheel with kafka-python msgs/s, "
        "bare_vs_kafka_python = the two bare loops'. Ratio = Flywheel / baseline msgs/s "
        "(higher is better), best run against best run; pair_ratios: each repeat's Flywheel run against the "
        "bare run just before it, and their median (the machine's speed drifts between repeats); "
        "ceiling_ratio: kafka-python's bare loop run beside a process decoding and landing its messages at "
        "its pace with Flywheel's decoder (baseline_beside_decoding) / the bare loop alone, what a consumer "
        "with no overhead of its own reaches while its messages are decoded on the same cores; "
        "ratio_to_ceiling: Flywheel / that loop; "
        "peak RSS (sampled every 10 ms) and PSS (every 200 ms) of the process tree "
        "(Flywheel's includes its forked workers, whose pages shared with the consumer RSS counts twice "
        "and PSS once; flywheel_peak_rss_mb_by_process: the consumer's own peak (run) and the largest "
        "worker's (decoder)); rss_ratio and pss_ratio: "
        "Flywheel / baseline. "
        "cpu_us_per_msg: CPU time of the process tree per message; consumer_process_cpu_us_per_msg: "
        "the consuming process alone (Flywheel decodes and lands in its worker process), which bounds "
        "the ratio when a core is free for the worker. load_average: the machine's, at the end.",
    }


def compare(runs: dict[str, list[dict]], messages: int) -> dict:
    """The best Flywheel run against the best bare run of one client: figures and ratios."""
    flywheel, baseline = runs["flywheel"], runs["baseline"]
    best_f = max(flywheel, key=lambda r: r["msgs_per_s"])
    best_b = max(baseline, key=lambda r: r["msgs_per_s"])

    def figures(best: dict, side: list[dict]) -> dict:
        return {
            "msgs_per_s": best["msgs_per_s"],
            "seconds": best["seconds"],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in side),
            "peak_pss_mb": max(r["peak_pss_mb"] for r in side),
            "cpu_us_per_msg": 1e6 * min(r["cpu_s"] for r in side) / messages,
            "consumer_process_cpu_us_per_msg": 1e6 * min(r["consumer_cpu_s"] for r in side) / messages,
        }

    f, b = figures(best_f, flywheel), figures(best_b, baseline)
    pairs = [fr["msgs_per_s"] / br["msgs_per_s"] for fr, br in zip(flywheel, baseline, strict=True)]
    return {
        "flywheel": f,
        "baseline": b,
        "ratio": f["msgs_per_s"] / b["msgs_per_s"],
        "pair_ratios": pairs,
        "median_pair_ratio": statistics.median(pairs),
        "rss_ratio": f["peak_rss_mb"] / b["peak_rss_mb"],
        "pss_ratio": f["peak_pss_mb"] / b["peak_pss_mb"],
        "flywheel_phases": best_f["phases"],
        "flywheel_peak_rss_mb_by_process": {
            role: max(r["peak_rss_mb_by_process"].get(role, 0.0) for r in flywheel)
            for role in sorted({role for r in flywheel for role in r["peak_rss_mb_by_process"]})
        },
        "flywheel_parts": best_f["parts"],
        **ceiling(runs.get("beside_decoding", []), best_f, best_b, messages),
    }


def ceiling(beside: list[dict], best_flywheel: dict, best_bare: dict, messages: int) -> dict:
    """The bare loop beside the decoding against the bare loop alone and against Flywheel (nothing
    without such runs)."""
    if not beside:
        return {}
    best = max(beside, key=lambda r: r["msgs_per_s"])
    return {
        "baseline_beside_decoding": {
            "msgs_per_s": best["msgs_per_s"],
            "seconds": best["seconds"],
            "consumer_process_cpu_us_per_msg": 1e6 * min(r["consumer_cpu_s"] for r in beside) / messages,
        },
        "ceiling_ratio": best["msgs_per_s"] / best_bare["msgs_per_s"],
        "ratio_to_ceiling": best_flywheel["msgs_per_s"] / best["msgs_per_s"],
    }


def main() -> None:
    """Print the benchmark result as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--decode-load", type=int, metavar="MESSAGES", help="run decode_load instead")
    parser.add_argument("--rate", type=float, help="with --decode-load: messages/s")
    parser.add_argument("--lake", type=Path, help="with --decode-load: where the parts land")
    args = parser.parse_args()
    if args.decode_load is not None:
        if args.rate is None or args.lake is None:
            parser.error("--decode-load needs --rate and --lake")
        decode_load(args.decode_load, args.rate, args.lake)
        return
    print(json.dumps(bench(args.messages, args.repeats), indent=2))


if __name__ == "__main__":
    main()
