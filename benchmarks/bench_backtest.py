"""``make backtest``: the retraining backtests, measured; results in benchmarks/results.json, key "backtest".

Scenarios (name them on the command line; default ``noaa``):

- ``noaa``: the NOAA weather example as shipped (``examples/noaa-weather``: 30-day steps over the
  whole series, policies never, every:1, every:3, every:6, drift, always); recorded as
  ``noaa-<snapshot.window>``. ``noaa-sliding`` and ``noaa-expanding`` force the training window, which
  is how the example's default window was chosen.
- ``noaa-windows``: expanding minus sliding, per policy, paired by step (from the two reports).
- ``noaa-year``: twelve 30-day steps of 1960 with the default policies (never, every:3, drift, always):
  the wall time of a one-year backtest of daily data.
- ``stationary``: the demo generator's card transactions without any drift, as many 30-day steps as
  the NOAA run; policies never and drift: how often the alarm fires, how often the gate promotes.
- ``abrupt``: the same stream with an abrupt concept change at the start of step 16 of 30 (the fraud
  rule of ``concept_drift=1`` from then on, as learnable as the first); policies never, every:3, drift,
  always: steps to the alarm, steps until the serving model's next-step ROC-AUC is back within 0.03 of
  its pre-change level. ``abrupt-expanding``: the same with an expanding window (the default).

The synthetic streams use the project's ``params.yaml`` (the card-transaction schema, the default
drift alarm and gate) with a 90-day sliding window (so the alarm has 9 reference windows of a step
to calibrate on and the gate's test split 13 days), one CPU thread for training, and events from
1975 on (``ingest.min_event_time``). Reports go to ``benchmarks/.work/backtest/<scenario>/``.

    python -m benchmarks.bench_backtest noaa-sliding noaa-expanding stationary abrupt
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from benchmarks.run import RESULTS, machine
from pipelines.backtest import run as backtest
from pipelines.backtest.policies import DEFAULT_POLICIES
from pipelines.common.config import apply_overrides, parse_params, read_params_dict
from pipelines.common.settings import Settings

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work" / "backtest"
NOAA = ROOT / "examples" / "noaa-weather"
NOAA_POLICIES = "never,every:1,every:3,every:6,drift,always"
STEP_DAYS, NOAA_STEPS = 30, 568  # the whole NOAA series: 18 159 days less the 1095-day first window
ROWS_PER_DAY = 60
SYNTHETIC = {
    "ingest.min_event_time": "1975-01-01T00:00:00Z",
    "snapshot.window": "sliding",
    "snapshot.window_days": 90,
    "train.device": "cpu",
    "train.cpu_threads": 1,
    "drift.window_days": STEP_DAYS,
}


def settings(name: str, params_path: Path) -> Settings:
    return Settings.from_env(
        {"FLYWHEEL_HOME": str(WORK / name / "home"), "FLYWHEEL_PARAMS": str(params_path)}
    )


def entry(name: str, summary: dict[str, Any], seconds: float, extra: dict[str, Any]) -> dict[str, Any]:
    """What results.json keeps of one backtest: the table per policy and where the report is."""
    doc = json.loads(Path(summary["files"]["json"]).read_text())
    policies = {}
    for row in doc["policies"]:
        promotions = row["promotions"]
        policies[row["policy"]] = {
            "mean_roc_auc": row["mean_roc_auc"],
            "median_roc_auc": row["median_roc_auc"],
            "ci90": [row["low"], row["high"]],
            "vs_never": row["vs_baseline"],
            "retrains": row["retrains"],
            "promotions": promotions,
            "promotion_rate": row["promotion_rate"],
            "drift_checks": row["drift_checks"],
            "alarms": row["alarms"],
            "alarm_rate": row["alarm_rate"],
            "bad_promotions": row["bad_promotions"],
            "bad_promotion_rate": row["bad_promotions"] / promotions if promotions else None,
            "seconds": row["seconds"],
        }
    return {
        **extra,
        "clock": doc["clock"],
        "window": doc["window"],
        "rows": doc["data"]["rows"],
        "candidates_trained": doc["candidates_trained"],
        "rejected_steps": len(doc["rejected_steps"]),
        "policies": policies,
        "change": doc.get("change"),
        "wall_s": round(seconds, 1),
        "report": str(Path(summary["files"]["html"]).relative_to(ROOT)),
        "machine": machine(),
        "when": datetime.now(UTC).isoformat(),
    }


def run_noaa(window: str | None, year: int | None = None) -> tuple[str, dict[str, Any]]:
    """The NOAA example, with its own window or ``window``; the whole series, or twelve steps of ``year``."""
    raw = read_params_dict(NOAA / "params.yaml")
    if window is not None:
        raw = apply_overrides(raw, {"snapshot.window": window})
    params = parse_params(raw)
    name = f"noaa-{params.snapshot.window}" if year is None else "noaa-year"
    span: dict[str, Any] = {"policies": NOAA_POLICIES}
    if year is not None:
        start = datetime(year, 1, 1, tzinfo=UTC)
        span = {"start": start, "end": start + timedelta(days=12 * STEP_DAYS), "policies": DEFAULT_POLICIES}
    path = WORK / name / "params.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    started = time.perf_counter()
    summary = backtest(
        params,
        settings(name, path),
        str(NOAA / "noaa_weather.csv"),
        step=f"{STEP_DAYS}d",
        out=WORK / name,
        **span,
    )
    extra = {"data": "examples/noaa-weather/noaa_weather.csv", "params": "examples/noaa-weather/params.yaml"}
    return name, entry(name, summary, time.perf_counter() - started, extra)


def synthetic(
    name: str, steps: int, policies: str, change_step: int | None, window: str = "sliding"
) -> tuple[str, dict[str, Any]]:
    """A demo stream of ``steps`` steps after a 90-day first window, stationary or with a change."""
    from pipelines.demo.streams import produce_stream

    raw = apply_overrides(read_params_dict(ROOT / "params.yaml"), {**SYNTHETIC, "snapshot.window": window})
    params = parse_params(raw)
    folder, path = WORK / name.removesuffix("-expanding") / "events", WORK / name / "params.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    start = datetime(1976, 1, 1, tzinfo=UTC)
    origin = start + timedelta(days=params.snapshot.window_days)
    end = origin + timedelta(days=steps * STEP_DAYS)
    change = origin + timedelta(days=(change_step - 1) * STEP_DAYS) if change_step else None
    rows = ROWS_PER_DAY * (end - start).days
    if not folder.exists():
        produce_stream(
            str(folder),
            rows,
            seed=7,
            start=start,
            end=end,
            files=max(1, steps // 6),
            fmt="parquet",
            batch=folder.parent.name,
            change_at=change,
        )
    started = time.perf_counter()
    summary = backtest(
        params,
        settings(name, path),
        str(folder),
        step=f"{STEP_DAYS}d",
        policies=policies,
        out=WORK / name,
        change_at=change,
    )
    extra = {
        "data": f"demo stream, seed 7, {rows} rows ({ROWS_PER_DAY}/day)",
        "params": "params.yaml with "
        + ", ".join(f"{k}={v}" for k, v in {**SYNTHETIC, "snapshot.window": window}.items()),
    }
    if change is not None:
        extra["change_at"] = change.isoformat()
    return name, entry(name, summary, time.perf_counter() - started, extra)


def window_comparison() -> tuple[str, dict[str, Any]]:
    """Expanding minus sliding on NOAA, per policy, step by step (the reports of both runs must exist)."""
    from pipelines.backtest import report

    runs = {w: WORK / f"noaa-{w}" / "backtest.json" for w in ("sliding", "expanding")}
    missing = [str(path) for path in runs.values() if not path.exists()]
    if missing:
        raise SystemExit(f"window comparison: run noaa-sliding and noaa-expanding first; missing {missing}")
    steps = {w: json.loads(path.read_text())["steps"] for w, path in runs.items()}
    differences = {
        policy: report.paired_difference(records, steps["sliding"][policy])
        for policy, records in steps["expanding"].items()
    }
    return "noaa-windows", {
        "what": "mean next-step ROC-AUC, expanding minus sliding (1095 days), by step, 90% block bootstrap",
        "policies": differences,
        "when": datetime.now(UTC).isoformat(),
    }


SCENARIOS = {
    "noaa": lambda: run_noaa(None),
    "noaa-sliding": lambda: run_noaa("sliding"),
    "noaa-expanding": lambda: run_noaa("expanding"),
    "noaa-year": lambda: run_noaa(None, year=1960),
    "noaa-windows": window_comparison,
    "stationary": lambda: synthetic("stationary", NOAA_STEPS, "never,drift", None),
    "abrupt": lambda: synthetic("abrupt", 30, "never,every:3,drift,always", 16),
    "abrupt-expanding": lambda: synthetic(
        "abrupt-expanding", 30, "never,every:3,drift,always", 16, "expanding"
    ),
}


def record(name: str, result: dict[str, Any]) -> None:
    """Merge one scenario into results.json under "backtest" (the benchmarks stay as they are)."""
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"benchmarks": {}}
    results.setdefault("backtest", {})[name] = result
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


def main(argv: list[str]) -> int:
    chosen = argv or ["noaa"]
    unknown = sorted(set(chosen) - set(SCENARIOS))
    if unknown:
        print(f"unknown scenario(s) {unknown}; expected some of {sorted(SCENARIOS)}", file=sys.stderr)
        return 2
    for scenario in chosen:
        name, result = SCENARIOS[scenario]()
        record(name, result)
        if "wall_s" not in result:
            print(f"{name}: {json.dumps(result['policies'])}")
            continue
        print(f"{name}: {result['wall_s']} s, report {result['report']}")
        for policy, row in result["policies"].items():
            print(
                f"  {policy}: mean ROC-AUC {row['mean_roc_auc']}, retrains {row['retrains']}, "
                f"promotions {row['promotions']}, alarms {row['alarms']}, bad {row['bad_promotions']}"
            )
    print(f"results: {RESULTS} (key 'backtest')")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
