"""``make bench``: every benchmark beside its baseline, in one run; results to results.json and RESULTS.md.

Each benchmark returns ``{"name", "flywheel": {...}, "baseline": {...}, "ratio", "notes"}``, and may add
``"variants": {label: {"flywheel", "baseline", "ratio", ...}}`` (the same benchmark in another
configuration, measured in the same run: a row of its own in RESULTS.md, whose ``vs_*`` figures, ratios
against the main row, follow its ratio). Results
are merged into ``benchmarks/results.json`` by name, so later benchmarks add to the same files.
Select some with ``python -m benchmarks.run NAME ...``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS, TABLE = HERE / "results.json", HERE / "RESULTS.md"
_EXTRA_RATIOS = ("vs_", "bare_vs_", "median_")  # a row's other ratios, shown after its ratio


def machine() -> dict:
    import torch

    info = {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
    }
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
        info["cpu"] = model
    except (OSError, StopIteration):
        pass
    if info["cuda"]:
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def benchmarks() -> dict:
    import torch

    from benchmarks import (
        bench_drift,
        bench_kafka_ingest,
        bench_s3_ingest,
        bench_score,
        bench_serve,
        bench_train_gpu,
        bench_train_loop,
        bench_training_dag,
    )

    available = {
        "train_loop_samples_per_s": lambda: bench_train_loop.bench(rows=200_000),
        "training_dag_100k": lambda: bench_training_dag.bench(rows=100_000, repeats=2),
        "training_dag_1m": lambda: bench_training_dag.bench(rows=1_000_000, epochs=3, repeats=2),
        "drift_check_1m": lambda: bench_drift.bench(rows=1_000_000),
        "kafka_ingest_100k": lambda: bench_kafka_ingest.bench(messages=100_000),
        "kafka_ingest_1m": lambda: bench_kafka_ingest.bench(messages=1_000_000, repeats=3),
        "score_100k": lambda: bench_score.bench(rows=100_000),
        "s3_ingest_100mb_1gb": lambda: bench_s3_ingest.bench(sizes_mb=(100, 1000)),
        "serve_latency": lambda: bench_serve.bench(),
    }
    if torch.cuda.is_available():  # without CUDA they are skipped; recorded GPU figures stay in results.json
        for rows in (1_000_000, 10_000_000):
            available[f"train_gpu_{bench_train_gpu.label(rows)}"] = lambda r=rows: bench_train_gpu.bench_gpu(
                r
            )
    return available


def write(results: dict) -> None:
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench`; ratio = Flywheel / baseline "
        "(higher is better for throughput, lower for time).",
        "",
        "| benchmark | Flywheel | baseline | ratio | machine | when |",
        "|---|---|---|---|---|---|",
    ]
    for name, entry in sorted(results["benchmarks"].items()):
        where = (
            f"{entry['machine'].get('cpu', '?')} ×{entry['machine']['cpu_count']}"
            f"{' + ' + entry['machine']['gpu'] if entry['machine'].get('gpu') else ''} | {entry['when'][:10]}"
        )
        rows = [(name, entry), *((f"{name} ({v})", sub) for v, sub in entry.get("variants", {}).items())]
        for label, row in rows:
            versus = "".join(f"; {k} {v:.3f}" for k, v in sorted(row.items()) if k.startswith(_EXTRA_RATIOS))
            figures = f"{_fmt(row['flywheel'])} | {_fmt(row['baseline'])} | {row['ratio']:.3f}{versus}"
            lines.append(f"| {label} | {figures} | {where} |")
    for name, entry in sorted(results["benchmarks"].items()):
        if entry.get("notes"):
            lines += ["", f"**{name}**: {entry['notes']}"]
    TABLE.write_text("\n".join(lines) + "\n")


def _fmt(figures: dict) -> str:
    return ", ".join(f"{k} {v:,.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in figures.items())


def main(argv: list[str]) -> int:
    available = benchmarks()
    chosen = argv or list(available)
    unknown = sorted(set(chosen) - set(available))
    if unknown:
        print(f"unknown benchmark(s) {unknown}; expected some of {sorted(available)}", file=sys.stderr)
        return 2
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"benchmarks": {}}
    host = machine()
    for name in chosen:
        print(f"benchmark {name} ...", flush=True)
        entry = available[name]()
        entry.update(machine=host, when=datetime.now(UTC).isoformat())
        results["benchmarks"][name] = entry
        for label, row in [(name, entry), *entry.get("variants", {}).items()]:
            print(
                f"  {label}: ratio {row['ratio']:.3f}  {_fmt(row['flywheel'])}  vs  {_fmt(row['baseline'])}"
            )
        write(results)
    print(f"results: {RESULTS} and {TABLE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
