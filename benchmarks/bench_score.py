"""Batch scoring throughput: ``flywheel score`` against a bare MLflow pyfunc ``predict`` of the same rows.

Setup (not timed): an installation whose champion comes from ``flywheel repro`` (three epochs on a few
thousand events), then ``rows`` more events ingested and validated in ``partitions`` batches.

- **Baseline**: ``mlflow.pyfunc.load_model(models:/<name>/<version>)`` and ``predict`` on the validated
  rows already in memory (the least any MLflow user does to score them).
- **Flywheel**: :func:`pipelines.scoring.run`: the champion lookup, the same model load, reading the
  validated partitions from the lake, the same ``predict``, the predictions and manifests written durably.

Both in one process, alternated, ``repeats`` times each (the predictions tier is emptied between Flywheel
runs); the median of each. Ratio = Flywheel rows/s ÷ baseline rows/s (the goal is ≥ 0.9).

    python -m benchmarks.run score_100k
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import time
from pathlib import Path

import pandas as pd

from benchmarks.bench_training_dag import BIN, ROOT, _env, _installation, _run


def setup(work: Path, rows: int, partitions: int) -> dict[str, str]:
    """A home with a champion and ``rows`` validated events in ``partitions`` partitions; its env."""
    from pipelines.demo import generator as produce

    first = work / "events-train"
    shutil.rmtree(work, ignore_errors=True)
    produce.produce(str(first), rows=4000, seed=1)
    home, params = _installation(work, "home", first, epochs=3)
    env = _env(home, params)
    for command in (["ingest"], ["validate"]):
        _run([str(BIN / "flywheel"), *command, "--json"], env)
    promotion = json.loads(_run([str(BIN / "flywheel"), "repro", "--json"], env)[1].splitlines()[-1])
    if not promotion["promotion"]["promoted"]:  # its quality does not matter here, only its speed
        reason = f"benchmark setup: {promotion['promotion']['reason']}"
        _run([str(BIN / "flywheel"), "promote", "--force", "--reason", reason, "--json"], env)
    for i in range(partitions):
        batch = work / f"events-{i}"
        produce.produce(str(batch), rows=rows // partitions, seed=10 + i, batch=f"b{i}", fmt="parquet")
        _run([str(BIN / "flywheel"), "ingest", "--path", str(batch), "--json"], env)
        _run([str(BIN / "flywheel"), "validate", "--json"], env)
    return env


def bench(rows: int = 100_000, partitions: int = 4, repeats: int = 5) -> dict:
    """Time both paths on ``rows`` validated events; see the module docstring."""
    import mlflow

    from pipelines import scoring
    from pipelines.common.config import load_params
    from pipelines.common.lake import Lake
    from pipelines.common.settings import Settings
    from pipelines.scoring import manifest
    from pipelines.scoring.stage import champion_model

    env = setup(ROOT / "benchmarks" / ".work" / f"score_{rows}", rows, partitions)
    os.environ.update({k: env[k] for k in ("FLYWHEEL_HOME", "FLYWHEEL_PARAMS", "MLFLOW_TRACKING_URI")})
    settings = Settings.from_env()
    params = load_params(settings.params_path)
    lake = Lake(settings.lake_root(params))
    names = manifest.validated_partitions(lake)
    frame = pd.concat([lake.read_partition(manifest.partition_path(lake, n, "validated")) for n in names])
    features = frame[list(params.schema.feature_names)]
    model = champion_model(params, settings)

    def bare() -> float:
        start = time.perf_counter()
        out = mlflow.pyfunc.load_model(model.uri).predict(features)
        assert len(out) == len(frame)
        return time.perf_counter() - start

    def flywheel() -> float:
        shutil.rmtree(lake.path(manifest.PREDICTIONS), ignore_errors=True)
        start = time.perf_counter()
        summary = scoring.run(params, settings, "bench")
        assert summary["rows_scored"] == len(frame), summary
        return time.perf_counter() - start

    bare()  # warm-up: imports, the first model load
    load_before = os.getloadavg()[0]
    times: dict[str, list[float]] = {"bare": [], "flywheel": []}
    for _ in range(repeats):
        times["bare"].append(bare())
        times["flywheel"].append(flywheel())
    bare_s, flywheel_s = statistics.median(times["bare"]), statistics.median(times["flywheel"])
    load = (load_before, os.getloadavg()[0])  # the machine is shared: its 1-minute load average, before/after
    return {
        "name": f"score_{rows // 1000}k",
        "flywheel": {"rows_per_s": len(frame) / flywheel_s, "wall_s": flywheel_s},
        "baseline": {"rows_per_s": len(frame) / bare_s, "wall_s": bare_s},
        "ratio": bare_s / flywheel_s,
        "load_average": list(load),
        # each repeat: the spread on a shared machine
        "repeats_s": {k: [round(t, 3) for t in v] for k, v in times.items()},
        "notes": f"{len(frame):,} validated events in {len(names)} partitions, median of {repeats}; "
        "`flywheel score` (champion lookup, model load, lake read, predict, predictions + manifests "
        "written durably) vs a bare `mlflow.pyfunc.load_model(...).predict` on the same rows in memory. "
        "Ratio = Flywheel throughput / bare throughput (goal >= 0.9). "
        f"1-minute load average {load[0]:.1f} before, {load[1]:.1f} after, on {os.cpu_count()} cores.",
    }
