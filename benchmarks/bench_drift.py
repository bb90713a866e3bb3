"""A drift check on a 1M-row window: Flywheel's sampled check against Evidently's full-data report.

Both sides compare the same 1M-row current window with the same 1M-row reference,
with the same Evidently tests (normed Wasserstein for numbers, Jensen-Shannon for
categories, threshold 0.1). Each column carries one shift size of the table
below, so one report judges every case:

| column | kind | shift |
|---|---|---|
| ``num_none``, ``num_small``, ``num_near``, ``num_large`` | normal | mean +0, +0.05σ, +0.11σ, +0.5σ |
| ``tail_none``, ``tail_large`` | log-normal (σ = 1, like amounts) | ×1, ×1.6 |
| ``cat_none``, ``cat_small``, ``cat_near``, ``cat_large`` | 10 categories | 0%, 5%, 31%, 50% of mass moved |

``*_near`` sit just above the threshold, where a sampled score is least sure.

- **Baseline**: Evidently's ``DataDriftPreset`` on all rows (``Report.run`` only).
- **Flywheel**: :func:`pipelines.drift.check.compare` with ``drift.sample_rows`` (50 000 by default):
  the same preset on a seeded sample of each side, then every column whose sampled
  score is within 4 estimated standard errors of the threshold re-tested on all rows
  with the same Evidently test (see ``pipelines/drift_check.py``).

Verdicts are compared per column and for the whole window (share of drifted columns
≥ ``max_drift_share``), over several sampling seeds. Times are the median over seeds
for Flywheel and one run for the baseline, in one process, after a warm-up.

    python -m benchmarks.bench_drift --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import pandas as pd

from pipelines.common.config import DriftConfig, Schema

CATEGORIES = tuple(f"c{i}" for i in range(10))
BASE_P = np.array([0.22, 0.16, 0.12, 0.10, 0.09, 0.08, 0.07, 0.06, 0.05, 0.05])
OTHER_P = BASE_P[::-1].copy()
NUMERIC = {"num_none": 0.0, "num_small": 0.05, "num_near": 0.11, "num_large": 0.5}
TAIL = {"tail_none": 1.0, "tail_large": 1.6}
CATEGORICAL = {"cat_none": 0.0, "cat_small": 0.05, "cat_near": 0.31, "cat_large": 0.5}


def schema() -> Schema:
    """The benchmark's schema: one column per case of the shift table (``num_near`` critical)."""
    columns = [{"name": n, "type": "float", "critical": n == "num_near"} for n in (*NUMERIC, *TAIL)]
    columns += [{"name": n, "type": "category", "categories": list(CATEGORIES)} for n in CATEGORICAL]
    return Schema.model_validate(
        {"name": "bench", "key": "id", "event_time": "t", "target": "y", "columns": columns}
    )


def window(rows: int, shifted: bool, seed: int) -> pd.DataFrame:
    """``rows`` raw rows; ``shifted`` applies each column's shift."""
    rng = np.random.default_rng(seed)
    data: dict[str, np.ndarray] = {}
    for name, shift in NUMERIC.items():
        data[name] = rng.normal(shift if shifted else 0.0, 1.0, rows)
    for name, scale in TAIL.items():
        data[name] = np.exp(rng.normal(np.log(80), 1.0, rows)) * (scale if shifted else 1.0)
    for name, moved in CATEGORICAL.items():
        p = (1 - moved) * BASE_P + moved * OTHER_P if shifted else BASE_P
        data[name] = np.array(CATEGORIES, dtype=object)[rng.choice(len(CATEGORIES), rows, p=p / p.sum())]
    return pd.DataFrame(data)


def full_report(
    reference: pd.DataFrame, current: pd.DataFrame, sch: Schema, cfg: DriftConfig
) -> dict[str, bool]:
    """The baseline: Evidently's DataDriftPreset on every row; ``{column: drifted}``."""
    from pipelines.drift.check import drift_scores, run_evidently

    columns = list(sch.feature_names)
    prepared = [
        frame.assign(**{c.name: frame[c.name].astype("float64") for c in sch.numeric})
        for frame in (reference, current)
    ]
    scores = drift_scores(run_evidently(*prepared, sch, columns, cfg))
    return {c: scores[c] >= cfg.column_threshold for c in columns}, scores


def sampled_check(
    reference: pd.DataFrame, current: pd.DataFrame, sch: Schema, cfg: DriftConfig
) -> tuple[dict[str, bool], dict]:
    """Flywheel's check; ``({column: drifted}, sampling details)``."""
    from pipelines.drift.check import compare

    result = compare(reference, current, sch, cfg).result
    return {c.name: c.drifted for c in result.columns}, result.sampling


def bench(rows: int = 1_000_000, sample_rows: int = DriftConfig().sample_rows, seeds: int = 5) -> dict:
    """Times and verdict agreement of the sampled check against the full-data report."""
    sch = schema()
    reference, current = window(rows, False, 1), window(rows, True, 2)
    cfg = DriftConfig(sample_rows=sample_rows, min_rows=1, max_drift_share=0.5)
    sampled_check(reference.head(20_000), current.head(20_000), sch, cfg)  # warm-up: imports, registries
    start = time.perf_counter()
    full, full_scores = full_report(reference, current, sch, cfg)
    full_seconds = time.perf_counter() - start
    times, agree, total, retested, window_agree = [], 0, 0, [], 0
    for seed in range(seeds):
        start = time.perf_counter()
        verdicts, sampling = sampled_check(reference, current, sch, cfg.model_copy(update={"seed": seed}))
        times.append(time.perf_counter() - start)
        agree += sum(verdicts[c] == full[c] for c in full)
        total += len(full)
        retested.append(sorted(c for c, s in sampling["columns"].items() if "full_score" in s))
        share, full_share = np.mean(list(verdicts.values())), np.mean(list(full.values()))
        window_agree += (share >= cfg.max_drift_share) == (full_share >= cfg.max_drift_share)
    flywheel_seconds = statistics.median(times)
    return {
        "name": "drift_check_1m",
        "flywheel": {"seconds": flywheel_seconds, "verdict_agreement": agree / total},
        "baseline": {"seconds": full_seconds},
        "ratio": flywheel_seconds / full_seconds,
        "rows": rows,
        "sample_rows": sample_rows,
        "seeds": seeds,
        "column_agreement": f"{agree}/{total}",
        "window_agreement": f"{window_agree}/{seeds}",
        "full_verdicts": full,
        "full_scores": {c: round(s, 4) for c, s in full_scores.items()},
        "retested_columns": retested,
        "flywheel_seconds_each": [round(t, 3) for t in times],
        "notes": f"{rows:,} reference + {rows:,} current rows, {len(full)} columns (normal, log-normal and "
        f"categorical; shifts none/small/near-threshold/large); Flywheel samples {sample_rows:,} rows "
        f"per side and re-tests on all rows the columns within 4 standard errors of the threshold; "
        f"verdicts agree {agree}/{total} columns and {window_agree}/{seeds} windows over {seeds} seeds. "
        "Ratio = Flywheel / full report time (lower is better).",
    }


def main() -> None:
    """Print the benchmark result as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sample-rows", type=int, default=DriftConfig().sample_rows)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(bench(args.rows, args.sample_rows, args.seeds), indent=2, default=str))


if __name__ == "__main__":
    main()
