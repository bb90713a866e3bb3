"""The training DAG's wall time on N events, per stage, against the same stage commands run bare.

Flywheel: ``airflow dags test flywheel_training`` (Airflow + DVC + MLflow + the gate).
Baseline: the same ``flywheel snapshot/featurize/train/evaluate/promote`` commands run one after the
other in a fresh workspace without Airflow or DVC. The ratio is the orchestration overhead.

Flywheel's side also reports each task's span in the ``dags test`` log (``task_<id>_s``: Airflow's task
start-up and XCom included, the first task's also the in-process execution API's start) and what is
outside every task (``outside_tasks_s``: the CLI's start, parsing the DAGs, creating the run, the exit).

The ``scheduler`` variant runs the same DAG as a nightly retrain runs: triggered through the REST API of
the embedded Airflow (``make run``'s: scheduler, DAG processor and API server on the LocalExecutor, started
before the clock starts, as they run all the time), from the trigger to the run's end as Airflow records
it; ``task_<id>_s`` are the task instances' durations, ``between_tasks_s`` the scheduler's time from one
task's end to the next one's start, ``queued_s`` from the trigger to the run's start.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
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


def _airflow_installation(
    work: Path, name: str, events: Path, epochs: int | None
) -> tuple[Path, Path, dict[str, str]]:
    """An installation with the events validated, Airflow's database migrated and the DAG's pools set."""
    home, params = _installation(work, name, events, epochs)
    env = _env(home, params)
    _land(env)
    _run([str(BIN / "airflow"), "db", "migrate"], env)
    for pool in ("gpu", "dvc"):
        _run([str(BIN / "airflow"), "pools", "set", pool, "1", pool], env)
    return home, params, env


def _stage_seconds(home: Path, params: Path, env: dict[str, str]) -> dict[str, float]:
    """Each DVC stage's seconds, from the run report ``flywheel_training`` wrote."""
    from pipelines import report
    from pipelines.common.config import load_params
    from pipelines.common.settings import Settings

    latest = report.latest(load_params(params), Settings.from_env(env), "flywheel_training")
    if latest is None:
        raise RuntimeError(f"flywheel_training wrote no run report in the lake of {home}")
    return dict(latest["stage_seconds"])


def orchestrated(work: Path, events: Path, epochs: int | None = None) -> tuple[float, dict[str, float]]:
    home, params, env = _airflow_installation(work, "dag", events, epochs)
    start = time.perf_counter()
    proc = subprocess.run(
        [str(BIN / "airflow"), "dags", "test", "flywheel_training"], env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"airflow dags test failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    spans = task_spans(proc.stdout + "\n" + proc.stderr)
    tasks = {f"task_{task}": seconds for task, seconds in spans.items()}
    return wall, {**_stage_seconds(home, params, env), **tasks, "outside_tasks": wall - sum(spans.values())}


def scheduled(work: Path, events: Path, epochs: int | None = None) -> tuple[float, dict[str, float]]:
    """The training DAG run by the embedded Airflow's scheduler: seconds from the trigger to the run's end."""
    from pipelines.demo import airflow_runner as runner

    home, params, env = _airflow_installation(work, "scheduler", events, epochs)
    airflow_home = Path(env["AIRFLOW_HOME"])
    api = runner.start(airflow_home, env=env, out=None)
    try:
        triggered = time.time()
        # asked for its state every 5 s, not make run's 1 s: each ask takes CPU from the run's tasks
        (run,) = runner.trigger_and_follow(api, "flywheel_training", out=None, poll_s=5.0)
        path = runner.run_path("flywheel_training", run.run_id)
        body, listing = api.call("GET", path), api.call("GET", f"{path}/taskInstances")
    finally:
        runner.stop(airflow_home, out=None)
    return _epoch(body["end_date"]) - triggered, {
        **_stage_seconds(home, params, env),
        **run_spans(body, listing["task_instances"]),
        "queued": _epoch(body["start_date"]) - triggered,
    }


def run_spans(run: dict, task_instances: list[dict]) -> dict[str, float]:
    """From the REST API's bodies of a finished run and its task instances: each task's duration
    (``task_<id>``) and ``between_tasks``, the time from the run's start to its first task's start and from
    each task's end to the next one's start (the tasks run one after the other)."""
    spans: dict[str, float] = {}
    between, previous = 0.0, _epoch(run["start_date"])
    for ti in sorted(task_instances, key=lambda ti: ti["start_date"]):
        spans[f"task_{ti['task_id']}"] = float(ti["duration"])
        between += _epoch(ti["start_date"]) - previous
        previous = _epoch(ti["end_date"])
    return {**spans, "between_tasks": between}


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def bench(rows: int, epochs: int | None = None, repeats: int = 1) -> dict:
    """Time the three paths on ``rows`` produced events (``epochs`` overrides train.epochs for all).

    With ``repeats`` > 1 the order alternates (dags test, bare, scheduler; then the reverse) and each side's
    fastest run, the one least disturbed by other work, is reported, every repeat's wall time beside it
    (``repeats_s``): on a shared machine one run's figures move by more than the overhead being measured.
    """
    from pipelines.demo import generator as produce

    work = ROOT / "benchmarks" / ".work" / f"training_{rows}"
    events = work / "events"
    shutil.rmtree(events, ignore_errors=True)
    produce.produce(str(events), rows=rows, seed=1, fmt="parquet", files=max(1, rows // 250_000))
    load_before = os.getloadavg()[0]
    runs: dict[str, list[tuple[float, dict[str, float]]]] = {"dag": [], "bare": [], "scheduler": []}
    sides = {"dag": orchestrated, "scheduler": scheduled}
    for repeat in range(repeats):  # the bare run sits between the two orchestrated ones; the order alternates
        for side in ("dag", "bare", "scheduler") if repeat % 2 == 0 else ("scheduler", "bare", "dag"):
            if side == "bare":
                times = bare(work, events, epochs)
                runs[side].append((sum(times.values()), times))
            else:
                runs[side].append(sides[side](work, events, epochs))
    load = [load_before, os.getloadavg()[0]]  # the machine is shared: its 1-minute load average, before/after
    bare_total, baseline = min(runs["bare"], key=lambda run: run[0])
    bare_walls = [wall for wall, _ in runs["bare"]]

    def row(side: str) -> dict:
        wall, stages = min(runs[side], key=lambda run: run[0])
        return {
            "flywheel": {"wall_s": wall, **{f"{k}_s": v for k, v in stages.items()}},
            "baseline": {"wall_s": bare_total, **{f"{k}_s": v for k, v in baseline.items()}},
            "ratio": wall / bare_total,
            "overhead_s": wall - bare_total,
            "repeats_s": {"flywheel": [wall for wall, _ in runs[side]], "baseline": bare_walls},
        }

    return {
        "name": f"training_dag_{rows}",
        **row("dag"),
        "variants": {"scheduler": row("scheduler")},
        "load_average": load,
        "notes": f"{rows:,} events, train.epochs {epochs or 'from params.yaml'}; "
        "`airflow dags test flywheel_training` vs the same stage commands run bare "
        f"(no Airflow, no DVC), {repeats} alternating run(s) of each, the fastest reported. "
        "Ratio = time overhead of orchestration (lower is better); task_*_s: each task's span, "
        "outside_tasks_s: the dags test CLI's start, DAG parsing and exit. The (scheduler) row: the "
        "same DAG triggered through the REST API of the embedded Airflow (make run's: scheduler, DAG "
        "processor and API server on the LocalExecutor, already running, as for a nightly retrain), from "
        "the trigger to the run's end; between_tasks_s: the scheduler's time from one task's end to the "
        "next one's start, queued_s: from the trigger to the run's start.",
    }
