"""S3 ingestion memory and speed: Flywheel's streamed S3 source against a bare boto3 download of the same
objects, in the same run, at two total sizes, on a local S3 API (moto's server).

For each size, four JSON Lines objects of demo events (a quarter of the size each) go to a fresh bucket;
then, each in a fresh process:

- **Flywheel**: ``flywheel ingest --source s3``: download (hashed), decode and type a batch of records at
  a time, Parquet part per object, manifests, state;
- **baseline**: a bare boto3 loop: ``get_object(...)["Body"].read()`` of each object in turn, what a
  reader that takes an object whole does, and nothing else.

Both report MB/s of object bytes over the process's whole life (start-up included, for both) and the
peak RSS and PSS of the process tree (sampled every 10 ms).
Flywheel's memory should stay flat as the objects grow (``rss_growth`` = peak RSS at the larger size /
at the smaller one), a whole-object read's grows with them. The ratio is Flywheel's MB/s / the bare
download's: Flywheel decodes and types every record, the baseline only moves bytes.

    python -m benchmarks.bench_s3_ingest --sizes-mb 100 400
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks.bench_kafka_ingest import ROOT, watch

OBJECTS = 4

_BARE_DOWNLOAD = """
import json, sys, time
import boto3
bucket, keys = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
client = boto3.client("s3")
size = 0
for key in keys:
    size += len(client.get_object(Bucket=bucket, Key=key)["Body"].read())
print(json.dumps({"bytes": size, "seconds": time.perf_counter() - start}))
"""


def upload(fs, bucket: str, size_mb: int) -> tuple[list[str], int]:
    """``OBJECTS`` JSON Lines objects of demo events, ``size_mb`` in all; their keys and total bytes."""
    from pipelines.demo import generator as demo

    _, lines, _ = demo.messages(20_000, seed=1, batch="bench")
    block = b"\n".join(lines) + b"\n"
    per_object = size_mb * 2**20 // OBJECTS
    body = block * max(1, per_object // len(block))
    fs.mkdir(bucket)
    keys = [f"events/part-{i}.jsonl" for i in range(OBJECTS)]
    for key in keys:
        fs.pipe_file(f"{bucket}/{key}", body)
    return keys, len(body) * OBJECTS


def flywheel_run(folder: Path, env: dict[str, str], bucket: str, size: int) -> dict:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["ingest"]["sources"] = ["s3"]
    params["ingest"]["s3"]["url"] = f"s3://{bucket}/events"
    path = folder / f"params-{bucket}.yaml"
    path.write_text(yaml.safe_dump(params))
    run_env = {**env, "FLYWHEEL_PARAMS": str(path), "FLYWHEEL_HOME": str(folder / bucket)}
    start = time.perf_counter()
    out, usage = watch([sys.executable, "-m", "pipelines.cli", "ingest", "--source", "s3", "--json"], run_env)
    seconds = time.perf_counter() - start
    summary = json.loads(out.strip().splitlines()[-1])["by_source"]["s3"]
    return {"mb_per_s": size / 2**20 / seconds, "seconds": seconds, "consumed": summary["consumed"], **usage}


def bare_run(env: dict[str, str], bucket: str, keys: list[str], size: int) -> dict:
    start = time.perf_counter()
    out, usage = watch([sys.executable, "-c", _BARE_DOWNLOAD, bucket, *keys], env)
    seconds = time.perf_counter() - start
    result = json.loads(out.strip().splitlines()[-1])
    if result["bytes"] != size:
        raise RuntimeError(f"downloaded {result['bytes']} bytes of {size}")
    return {"mb_per_s": size / 2**20 / seconds, "seconds": seconds, "download_s": result["seconds"], **usage}


def bench(sizes_mb: tuple[int, ...] = (100, 1000)) -> dict:
    """Flywheel's streamed S3 ingestion and a bare boto3 download at each total size."""
    from pipelines.demo import services
    from pipelines.demo.services.supervisor import free_port
    from pipelines.ingest.endpoints import S3Endpoint

    runs: dict[int, dict] = {}
    with tempfile.TemporaryDirectory(prefix="flywheel-bench-s3-") as tmp:
        folder = Path(tmp)
        url = services.up(["s3"], folder / "services", ports={"s3": free_port()})["s3"]["endpoint"]
        try:
            endpoint = S3Endpoint(url, "bench", "bench", region="us-east-1")
            fs = endpoint.filesystem()
            env = {
                **os.environ,
                "PYTHONPATH": str(ROOT),
                "AWS_ENDPOINT_URL": url,
                "AWS_ACCESS_KEY_ID": "bench",
                "AWS_SECRET_ACCESS_KEY": "bench",
                "AWS_DEFAULT_REGION": "us-east-1",
            }
            for size_mb in sizes_mb:
                bucket = f"bench-{size_mb}mb"
                keys, size = upload(fs, bucket, size_mb)
                runs[size_mb] = {
                    "object_mb": size / 2**20 / OBJECTS,
                    "baseline": bare_run(env, bucket, keys, size),
                    "flywheel": flywheel_run(folder, env, bucket, size),
                }
                fs.rm(bucket, recursive=True)
        finally:
            services.down(None, folder / "services")
    small, large = min(sizes_mb), max(sizes_mb)
    fly, base = runs[large]["flywheel"], runs[large]["baseline"]
    return {
        "name": f"s3_ingest_{_size(small)}_{_size(large)}",
        "flywheel": {
            "mb_per_s": fly["mb_per_s"],
            "peak_rss_mb": fly["peak_rss_mb"],
            "peak_pss_mb": fly["peak_pss_mb"],
            "rss_growth": fly["peak_rss_mb"] / runs[small]["flywheel"]["peak_rss_mb"],
        },
        "baseline": {
            "mb_per_s": base["mb_per_s"],
            "peak_rss_mb": base["peak_rss_mb"],
            "peak_pss_mb": base["peak_pss_mb"],
            "rss_growth": base["peak_rss_mb"] / runs[small]["baseline"]["peak_rss_mb"],
        },
        "ratio": fly["mb_per_s"] / base["mb_per_s"],
        "runs": {_size(mb): r for mb, r in runs.items()},
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "notes": f"{OBJECTS} JSON Lines objects of demo events (~230 bytes a line) per size on a local moto "
        "S3 "
        f"server, {small} MB and {large} MB in all; Flywheel = `flywheel ingest --source s3` in a fresh "
        "process (streamed: download hashed to a local file, batches of 20k records decoded, typed and "
        "written to a Parquet part per object, up to four objects at once, one a core); baseline = a bare "
        "boto3 "
        "get_object().read() of each object in a fresh process. Figures at the larger size; rss_growth = "
        "peak RSS at the larger size / at the smaller (1.0: flat). Ratio = Flywheel / baseline MB/s "
        "(Flywheel decodes and types every record; the baseline only moves bytes).",
    }


def _size(mb: int) -> str:
    return f"{mb // 1000}gb" if mb >= 1000 and mb % 1000 == 0 else f"{mb}mb"


def main() -> None:
    """Print the benchmark result as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[100, 1000])
    args = parser.parse_args()
    print(json.dumps(bench(tuple(args.sizes_mb)), indent=2))


if __name__ == "__main__":
    main()
