"""The training DAG's wall time on N events, per stage, against the same stage commands run bare.

Flywheel: ``airflow dags test flywheel_training`` (Airflow + DVC + MLflow + the gate).
Baseline: the same ``flywheel snapshot/featurize/train/evaluate/promote`` commands run one after the
other in a fresh workspace without Airflow or DVC. The ratio is the orchestration overhead.

Flywheel's side also reports each task's span in the ``dags test`` log (``task_<id>_s``: Airflow's task
start-up and XCom included, the first task's also the in-process execution API's start) and what is
outside every task (``outside_tasks_s``: the CLI's start, parsing the DAGs, creating the run, the exit).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STAGES = ("snapshot", "featurize", "train", "evaluate")
_TASK_LINE = re.compile(  # Airflow's own line: time, [level], then the message
    r"^(?P<at>\S+) \[\w+\s*\] \[DAG TEST\] (?P<what>starting|end task) task_id=(?P<task>\S+)"
)


def _env(home: Path, params: Path) -> dict[str, str]:
    return {
        **os.environ,
        "FLYWHEEL_HOME": str(home),
        "FLYWHEEL_PARAMS": str(params),
        "FLYWHEEL_PROJECT": str(ROOT),
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
        "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "GX_ANALYTICS_ENABLED": "false",
        "PYTHONPATH": f"{ROOT / 'plugins'}:{ROOT}",
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
    }


def _run(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(args, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start, proc.stdout


def task_spans(log: str) -> dict[str, float]:
    """Seconds from ``[DAG TEST] starting`` to ``[DAG TEST] end task`` of each task in a ``dags test`` log."""
    from datetime import datetime

    started: dict[str, datetime] = {}
    spans: dict[str, float] = {}
    for line in log.splitlines():
        match = _TASK_LINE.match(line)
        if not match:
            continue
        at = datetime.fromisoformat(match["at"].replace("Z", "+00:00"))
        if match["what"] == "starting":
            started[match["task"]] = at
        elif match["task"] in started:
            spans[match["task"]] = (at - started.pop(match["task"])).total_seconds()
    return spans


def _installation(work: Path, name: str, events: Path, epochs: int | None = None) -> tuple[Path, Path]:
    home = work / name
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["ingest"]["files"]["path"] = str(events)
    if epochs:
        params["train"]["epochs"] = epochs
    params_path = home / "params.yaml"
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    return home, params_path


def _land(env: dict[str, str]) -> float:
    seconds = _run([str(BIN / "flywheel"), "ingest", "--json"], env)[0]
    return seconds + _run([str(BIN / "flywheel"), "validate", "--json"], env)[0]


def bare(work: Path, events: Path, epochs: int | None = None) -> dict[str, float]:
    home, params = _installation(work, "bare", events, epochs)
    env = _env(home, params)
    _land(env)
    _run([str(BIN / "flywheel"), "init", "--json"], env)
    shutil.copyfile(params, home / "workspace" / "params.yaml")
    times = {s: _run([str(BIN / "flywheel"), s, "--json"], env)[0] for s in STAGES}
    times["promote"] = _run([str(BIN / "flywheel"), "promote", "--json"], env)[0]
    return times


def orchestrated(work: Path, events: Path, epochs: int | None = None) -> tuple[float, dict[str, float]]:
    home, params = _installation(work, "dag", events, epochs)
    env = _env(home, params)
    _land(env)
    _run([str(BIN / "airflow"), "db", "migrate"], env)
    for pool in ("gpu", "dvc"):
        _run([str(BIN / "airflow"), "pools", "set", pool, "1", pool], env)
    start = time.perf_counter()
    proc = subprocess.run(
        [str(BIN / "airflow"), "dags", "test", "flywheel_training"], env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"airflow dags test failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    spans = task_spans(proc.stdout + "\n" + proc.stderr)
    from pipelines import report
    from pipelines.common.config import load_params
    from pipelines.common.settings import Settings

    latest = report.latest(load_params(params), Settings.from_env(env), "flywheel_training")
    if latest is None:
        raise RuntimeError(f"flywheel_training wrote no run report in the lake of {home}")
    tasks = {f"task_{task}": seconds for task, seconds in spans.items()}
    return wall, {**latest["stage_seconds"], **tasks, "outside_tasks": wall - sum(spans.values())}


def bench(rows: int, epochs: int | None = None, repeats: int = 1) -> dict:
    """Time both paths on ``rows`` produced events (``epochs`` overrides train.epochs for both).

    With ``repeats`` > 1 the sides alternate (Flywheel then bare, bare then Flywheel, ...) and each side's
    fastest run, the one least disturbed by other work, is reported, every repeat's wall time beside it
    (``repeats_s``): on a shared machine one run's figures move by more than the overhead being measured.
    """
    from pipelines.demo import generator as produce

    work = ROOT / "benchmarks" / ".work" / f"training_{rows}"
    events = work / "events"
    shutil.rmtree(events, ignore_errors=True)
    produce.produce(str(events), rows=rows, seed=1, fmt="parquet", files=max(1, rows // 250_000))
    load_before = os.getloadavg()[0]
    dag_runs: list[tuple[float, dict[str, float]]] = []
    bare_runs: list[dict[str, float]] = []
    for repeat in range(repeats):
        sides = ("dag", "bare") if repeat % 2 == 0 else ("bare", "dag")
        for side in sides:
            if side == "dag":
                dag_runs.append(orchestrated(work, events, epochs))
            else:
                bare_runs.append(bare(work, events, epochs))
    load = [load_before, os.getloadavg()[0]]  # the machine is shared: its 1-minute load average, before/after
    walls, bare_walls = [w for w, _ in dag_runs], [sum(b.values()) for b in bare_runs]
    wall, stages = min(dag_runs, key=lambda run: run[0])
    baseline = min(bare_runs, key=lambda b: sum(b.values()))
    bare_total = sum(baseline.values())
    return {
        "name": f"training_dag_{rows}",
        "flywheel": {"wall_s": wall, **{f"{k}_s": v for k, v in stages.items()}},
        "baseline": {"wall_s": bare_total, **{f"{k}_s": v for k, v in baseline.items()}},
        "ratio": wall / bare_total,
        "overhead_s": wall - bare_total,
        "repeats_s": {"flywheel": walls, "baseline": bare_walls},
        "load_average": load,
        "notes": f"{rows:,} events, train.epochs {epochs or 'from params.yaml'}; "
        "`airflow dags test flywheel_training` vs the same stage commands run bare "
        f"(no Airflow, no DVC), {repeats} alternating run(s) of each, the fastest reported. "
        "Ratio = time overhead of orchestration (lower is better); task_*_s: each task's span, "
        "outside_tasks_s: the dags test CLI's start, DAG parsing and exit.",
    }
