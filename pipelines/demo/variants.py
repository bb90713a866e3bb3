"""Produce, other tasks: seeded demo events for a regression and a multiclass dataset.

The binary demo (:mod:`pipelines.demo.generator`) is card transactions with a fraud label. These two
datasets have schemas of their own, so the whole loop runs on them by editing ``params.yaml`` alone
(``examples/delivery-times/params.yaml``, ``examples/support-tickets/params.yaml``):

- ``regression``: food deliveries (``order_id``, ``ordered_at``), the target ``delivery_minutes``,
  a noisy non-linear function of distance, items, cuisine, hour and rain;
- ``multiclass``: support tickets (``ticket_id``, ``opened_at``), the target ``queue``, one of
  ``billing``, ``technical``, ``sales``, ``account``, drawn from a softmax over the ticket's features.

The drift knobs are the binary demo's: ``covariate_drift`` moves the inputs (longer trips and more
rain; more mobile tickets on newer accounts), ``concept_drift`` the rule (deliveries slow down per
kilometre in the evening; technical tickets move to the web channel). The same arguments always give
byte-identical files.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import fsspec
import numpy as np
import pandas as pd

from pipelines.demo.generator import default_window

TASKS = ("regression", "multiclass")
CUISINES = ("pizza", "burger", "sushi", "thai", "salad", "indian")
CHANNELS = ("email", "web", "mobile", "phone")
PRODUCTS = ("basic", "pro", "enterprise")
QUEUES = ("billing", "technical", "sales", "account")

_CUISINE_P = np.array([0.25, 0.2, 0.15, 0.15, 0.1, 0.15])
_CUISINE_MINUTES = np.array([4.0, 2.0, 8.0, 6.0, 1.0, 7.0])
_CHANNEL_P = np.array([0.3, 0.35, 0.2, 0.15])
_CHANNEL_P_DRIFTED = np.array([0.15, 0.3, 0.45, 0.1])


def generate_task(
    task: str,
    rows: int,
    seed: int = 0,
    start: datetime | None = None,
    end: datetime | None = None,
    batch: str = "demo",
    covariate_drift: float = 0.0,
    concept_drift: float = 0.0,
) -> pd.DataFrame:
    """The clean demo frame of ``task`` (``regression`` or ``multiclass``), ordered by event time."""
    if task not in TASKS:
        raise ValueError(f"task {task!r}: expected one of {list(TASKS)} (binary is the default demo)")
    for name, value in (("covariate_drift", covariate_drift), ("concept_drift", concept_drift)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} = {value}: expected a fraction in [0, 1]")
    start, end = default_window(start, end)
    rng = np.random.default_rng([seed, 7 if task == "regression" else 8])
    span_us = int((end - start).total_seconds() * 1_000_000)
    offsets = np.sort(rng.integers(0, span_us, size=rows))
    times = pd.DatetimeIndex(pd.Timestamp(start).value // 1000 + offsets, dtype="datetime64[us]")
    times = times.tz_localize("UTC")
    hour = times.hour.to_numpy()
    keys = [f"{batch}-{seed}-{i:08d}" for i in range(rows)]
    if task == "regression":
        return _deliveries(rng, keys, times, hour, covariate_drift, concept_drift)
    return _tickets(rng, keys, times, covariate_drift, concept_drift)


def _deliveries(
    rng: np.random.Generator,
    keys: list[str],
    times: pd.DatetimeIndex,
    hour: np.ndarray,
    covariate_drift: float,
    concept_drift: float,
) -> pd.DataFrame:
    n = len(keys)
    distance = np.round(rng.gamma(2.0, 1.6 + 1.2 * covariate_drift, n), 2)
    items = rng.integers(1, 9, n)
    cuisine = rng.choice(len(CUISINES), size=n, p=_CUISINE_P)
    rain = np.round(np.where(rng.random(n) < 0.2 + 0.3 * covariate_drift, rng.exponential(4.0, n), 0.0), 1)
    evening = ((hour >= 17) & (hour <= 21)).astype(float)
    per_km = 3.0 + 2.5 * concept_drift * evening
    minutes = (
        12.0
        + per_km * distance
        + 1.2 * items
        + _CUISINE_MINUTES[cuisine]
        + 6.0 * evening
        + 0.8 * rain
        + 0.05 * distance * rain
        + rng.normal(0.0, 3.0, n)
    )
    return pd.DataFrame(
        {
            "order_id": keys,
            "ordered_at": times,
            "distance_km": distance,
            "items": pd.array(items, dtype="Int64"),
            "cuisine": np.array(CUISINES, dtype=object)[cuisine],
            "hour_of_day": pd.array(hour, dtype="Int64"),
            "rain_mm": rain,
            "delivery_minutes": np.round(np.clip(minutes, 5.0, 180.0), 2),
        }
    )


def _tickets(
    rng: np.random.Generator,
    keys: list[str],
    times: pd.DatetimeIndex,
    covariate_drift: float,
    concept_drift: float,
) -> pd.DataFrame:
    n = len(keys)
    p = (1 - covariate_drift) * _CHANNEL_P + covariate_drift * _CHANNEL_P_DRIFTED
    channel = rng.choice(len(CHANNELS), size=n, p=p / p.sum())
    product = rng.choice(len(PRODUCTS), size=n, p=[0.5, 0.35, 0.15])
    length = np.clip(np.round(rng.lognormal(5.0, 0.7, n)), 10, 5000).astype(np.int64)
    age = np.clip(np.round(rng.exponential(400 * (1 - 0.6 * covariate_drift), n)), 0, 5000).astype(np.int64)
    errors = rng.poisson(0.8, n)
    mobile, web = (channel == 2).astype(float), (channel == 1).astype(float)
    logits = np.stack(
        [
            0.8 * (product == 0) + 0.4 * (age > 300) - 0.002 * length,  # billing
            0.6 * errors + 0.0015 * length + (1 - concept_drift) * mobile + concept_drift * 1.5 * web,
            1.2 * (product == 2) + 0.9 * (channel == 3) - 0.5 * errors,  # sales
            1.0 * (age < 30) + 0.5 * (channel == 0),  # account
        ],
        axis=1,
    ) * 1.6 + rng.gumbel(0.0, 1.0, (n, len(QUEUES)))
    return pd.DataFrame(
        {
            "ticket_id": keys,
            "opened_at": times,
            "message_length": pd.array(length, dtype="Int64"),
            "channel": np.array(CHANNELS, dtype=object)[channel],
            "product": np.array(PRODUCTS, dtype=object)[product],
            "account_age_days": pd.array(age, dtype="Int64"),
            "error_count": pd.array(errors, dtype="Int64"),
            "queue": np.array(QUEUES, dtype=object)[logits.argmax(axis=1)],
        }
    )


def json_records(frame: pd.DataFrame) -> list[str]:
    """Each row of a task demo frame as a JSON object, its event time (the second column) in ISO-8601."""
    time_column = frame.columns[1]
    records = frame.assign(**{time_column: frame[time_column].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")})
    return [json.dumps({k: _plain(v) for k, v in row.items()}) for row in records.to_dict("records")]


def task_messages(task: str, rows: int, **options: Any) -> tuple[list[bytes], list[bytes], dict[str, Any]]:
    """The ``task`` demo as Kafka messages: keys (the event key) and JSON values, and a summary."""
    frame = generate_task(task, rows, **options)
    keys = [str(key).encode() for key in frame[frame.columns[0]]]
    values = [record.encode() for record in json_records(frame)]
    return (
        keys,
        values,
        {"task": task, "rows": rows, **{k: v for k, v in options.items() if k != "start" and k != "end"}},
    )


def produce_task(
    out: str,
    task: str,
    rows: int,
    seed: int = 0,
    start: datetime | None = None,
    end: datetime | None = None,
    batch: str = "demo",
    covariate_drift: float = 0.0,
    concept_drift: float = 0.0,
) -> dict[str, Any]:
    """Write the ``task`` demo as one JSON Lines file ``<batch>-<task>.jsonl`` into a folder or URL."""
    frame = generate_task(task, rows, seed, start, end, batch, covariate_drift, concept_drift)
    lines = "".join(record + "\n" for record in json_records(frame))
    fs, root = fsspec.core.url_to_fs(out)
    fs.makedirs(root, exist_ok=True)
    path = f"{root.rstrip('/')}/{batch}-{task}.jsonl"
    with fs.open(path + ".tmp", "wb") as f:
        f.write(lines.encode())
    fs.mv(path + ".tmp", path)
    target = frame.columns[-1]
    summary = (
        {"target_mean": round(float(frame[target].mean()), 4)}
        if task == "regression"
        else {"class_counts": {str(k): int(v) for k, v in frame[target].value_counts().sort_index().items()}}
    )
    return {
        "task": task,
        "rows": rows,
        "seed": seed,
        "paths": [path],
        "covariate_drift": covariate_drift,
        "concept_drift": concept_drift,
        **summary,
    }


def _plain(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return None if value is pd.NA else value
