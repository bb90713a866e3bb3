"""Small datasets of other schemas, built in memory: a churn table and a sensor feed; lake partitions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from pipelines.common.config import Params, parse_params
from pipelines.common.lake import MANIFEST, Lake
from pipelines.featurize.preprocess import Preprocessor
from pipelines.featurize.stage import build_features
from pipelines.train.data import TrainingData
from pipelines.workspace import paths

CHURN_SCHEMA = {
    "name": "churn",
    "key": "customer_id",
    "event_time": "observed_at",
    "target": "churned",
    "columns": [
        {"name": "tenure", "type": "float", "min": 0, "max": 120},
        {"name": "plan", "type": "category", "categories": ["basic", "pro", "max"]},
        {"name": "support_calls", "type": "int", "min": 0, "max": 30, "required": False},
    ],
}


def churn_params(**sections: dict) -> Params:
    """Params for the churn schema, with optional section overrides."""
    return parse_params({"schema": CHURN_SCHEMA, "featurize": {"min_category_count": 1}, **sections})


def churn_events(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """A snapshot-shaped frame (sorted by time, key) whose target depends on the features."""
    rng = np.random.default_rng(seed)
    tenure = rng.uniform(0, 72, n)
    plan = rng.choice(["basic", "pro", "max"], n, p=[0.5, 0.3, 0.2])
    calls = rng.poisson(2.0, n)
    logit = -0.5 - 0.06 * tenure + 0.7 * calls + np.select([plan == "basic", plan == "max"], [1.0, -1.0], 0.0)
    churned = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype("int8")
    support = pd.array(calls, dtype="Int64")
    support[rng.uniform(size=n) < 0.05] = pd.NA
    times = pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(
        np.sort(rng.integers(0, 30 * 86400, n)), "s"
    )
    return pd.DataFrame(
        {
            "customer_id": [f"c{i:06d}" for i in range(n)],
            "observed_at": times.astype("datetime64[us, UTC]"),
            "tenure": tenure,
            "plan": plan.astype(object),
            "support_calls": support,
            "churned": churned,
        }
    )


def write_snapshot(workspace: Path, events: pd.DataFrame) -> None:
    """Put ``events`` where the featurize stage reads its snapshot."""
    path = workspace / paths.EVENTS
    path.parent.mkdir(parents=True, exist_ok=True)
    events.to_parquet(path, index=False)


SENSOR = {
    "name": "sensor",
    "key": "reading_id",
    "event_time": "read_at",
    "target": "alarm",
    "columns": [
        {"name": "temperature", "type": "float", "min": 0, "max": 100},
        {"name": "site", "type": "category", "categories": ["a", "b", "c"]},
        {"name": "reading_count", "type": "int", "min": 0, "max": 1000, "required": False},
    ],
}
EVENT_TIME_DTYPE = "datetime64[us, UTC]"
VALIDATE = {
    "min_rows": 50,
    "mostly": 0.99,
    "max_null_fraction": 0.05,
    "min_target_rate": 0.0,
    "max_target_rate": 0.5,
}


def sensor_params(storage_root: str | None = None, **validate_cfg) -> Params:
    """Params for the sensor schema, with optional validate overrides and a lake root."""
    return parse_params(
        {"schema": SENSOR, "validate": {**VALIDATE, **validate_cfg}, "storage": {"root": storage_root}}
    )


def sensor_frame(rows: int = 200, seed: int = 0) -> pd.DataFrame:
    """A clean landed batch of the sensor schema, typed as ingestion lands it."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "reading_id": [f"r{seed}-{i}" for i in range(rows)],
            "read_at": pd.date_range("2024-05-01", periods=rows, freq="min", tz="UTC").astype(
                EVENT_TIME_DTYPE
            ),
            "alarm": (np.arange(rows) % 10 == 0).astype("int8"),
            "temperature": rng.uniform(0, 100, rows),
            "site": rng.choice(["a", "b", "c"], rows).astype(object),
            "reading_count": pd.array(rng.integers(0, 1000, rows), dtype="Int64"),
            "_origin": [f"sensor.jsonl:{i + 1}" for i in range(rows)],
        }
    )


def spoil(column: str, value: Any, share: float) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """A change to a batch: ``column`` set to ``value`` in its first ``share`` of rows."""

    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        rows = int(len(frame) * share)
        frame.loc[: rows - 1, column] = value
        return frame

    return mutate


def write_partition(
    lake: Lake,
    tier: str,
    frames: pd.DataFrame | list[pd.DataFrame],
    run_id: str,
    source: str = "files",
    **manifest: Any,
) -> str:
    """A complete partition of ``tier``: each frame as a numbered part, then the manifest (with ``rows``)."""
    frames = [frames] if isinstance(frames, pd.DataFrame) else frames
    partition = lake.partition(tier, run_id, source)
    for i, frame in enumerate(frames):
        lake.write_table(
            f"{partition}/part-{i:05d}.parquet", pa.Table.from_pandas(frame, preserve_index=False)
        )
    lake.write_json(f"{partition}/{MANIFEST}", {"rows": sum(map(len, frames)), **manifest})
    return partition


def training_data(n: int = 1500, seed: int = 0) -> tuple[TrainingData, Preprocessor]:
    """Train and valid tensors of the churn data, and the preprocessor fitted on train."""
    params = churn_params()
    result = build_features(churn_events(n, seed), params.schema, params.featurize)
    data = TrainingData.from_frames(result.features["train"], result.features["valid"], result.preprocessor)
    return data, result.preprocessor
