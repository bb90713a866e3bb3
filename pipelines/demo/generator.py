"""Produce: seeded demo events, labelled card transactions with a learnable fraud signal.

This is the only module that knows the demo's columns (the ``card_transactions``
schema in ``params.yaml``); everything downstream reads column names from the
schema. The same arguments always give byte-identical files.

The fraud label follows a non-linear, noisy rule (about 3% positives): large
amounts in risky categories, night hours, new accounts on the web, some
countries, and their interactions. Two knobs move the data for drift demos:

- ``covariate_drift`` shifts the inputs (larger amounts, riskier categories,
  countries and devices, younger customers, newer accounts);
- ``concept_drift`` changes the rule itself (fraud moves to small grocery and
  utility payments on mobile during the day).

``malformed_fraction`` replaces that share of records by broken ones of many
kinds, so the ingest stage has something to quarantine.
"""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

# fmt: off
COLUMNS = ("transaction_id", "event_time", "amount", "merchant_category", "country", "device",
           "hour_of_day", "customer_age", "account_tenure_days", "is_fraud")
CATEGORIES = ("grocery", "restaurant", "fuel", "travel", "electronics", "fashion", "gaming", "crypto",
              "utilities", "pharmacy")
COUNTRIES = ("US", "GB", "DE", "FR", "NL", "ES", "BR", "NG", "IN", "SG")
DEVICES = ("mobile", "web", "pos")
FORMATS = ("jsonl", "csv", "parquet")

_CATEGORY_P = np.array([.22, .16, .10, .06, .08, .10, .05, .02, .12, .09])
_CATEGORY_P_DRIFTED = np.array([.12, .10, .07, .12, .16, .09, .10, .06, .10, .08])
_CATEGORY_RISK = np.array([0, 0, 0, .5, .9, .1, .8, 1.2, 0, 0])
_AMOUNT_MEDIAN = np.array([40, 35, 50, 380, 240, 80, 30, 300, 90, 25], dtype=float)
_AMOUNT_SIGMA = np.array([.6, .5, .4, .8, .9, .7, .9, 1.1, .4, .6])
_COUNTRY_P = np.array([.35, .12, .10, .09, .05, .07, .07, .03, .08, .04])
_COUNTRY_P_DRIFTED = np.array([.26, .10, .07, .07, .04, .06, .13, .09, .12, .06])
_COUNTRY_RISK = np.array([0, 0, 0, 0, 0, 0, .6, 1.0, .4, .2])
_DEVICE_P = np.array([.50, .30, .20])
_DEVICE_P_DRIFTED = np.array([.40, .45, .15])
_HOUR_WEIGHT = np.array([.25, .18, .14, .12, .12, .18, .35, .60, .85, 1.0, 1.05, 1.1,     # 00-11 UTC
                         1.2, 1.15, 1.1, 1.05, 1.05, 1.1, 1.2, 1.25, 1.15, .95, .70, .45])  # 12-23 UTC
_MAX_AMOUNT = 24_999.99
_OVERSIZED_BYTES = 70_000  # above the default ingest.max_record_bytes (65536)
_BATCH = re.compile(r"^[A-Za-z0-9_.-]+$")

MALFORMED_JSONL = ("not_json", "truncated", "wrong_type", "missing_field", "nan_amount", "inf_amount",
                   "bad_timestamp", "ancient_timestamp", "future_timestamp", "null_key", "non_utf8",
                   "json_array", "oversized", "float_hour", "numeric_category", "bad_label", "bool_amount")
MALFORMED_PARQUET = ("wrong_type", "missing_field", "inf_amount", "bad_timestamp", "ancient_timestamp",
                     "future_timestamp", "null_key", "float_hour", "bad_label")
MALFORMED_CSV = (*MALFORMED_PARQUET, "truncated")
# fmt: on
MALFORMED_KINDS = {"jsonl": MALFORMED_JSONL, "csv": MALFORMED_CSV, "parquet": MALFORMED_PARQUET}


# -- the clean frame ----------------------------------------------------------------------


def default_window(start: datetime | None = None, end: datetime | None = None) -> tuple[datetime, datetime]:
    """``[start, end)`` in UTC: by default the 14 days before today 00:00 UTC."""
    if end is None:
        now = datetime.now(UTC)
        end = datetime(now.year, now.month, now.day, tzinfo=UTC)
    end = _as_utc(end)
    start = _as_utc(start) if start is not None else end - timedelta(days=14)
    if start >= end:
        raise ValueError(f"start {start.isoformat()} must be before end {end.isoformat()}")
    return start, end


def _as_utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def generate(
    rows: int,
    seed: int = 0,
    start: datetime | None = None,
    end: datetime | None = None,
    batch: str = "demo",
    covariate_drift: float = 0.0,
    concept_drift: float = 0.0,
) -> pd.DataFrame:
    """The clean, typed demo frame, ordered by event time.

    Args:
        rows: number of transactions.
        seed: the random seed; with ``batch`` it also prefixes the keys, so that
            different seeds or batches never collide.
        start: first event time (default: 14 days before ``end``).
        end: events end before this time (default: today 00:00 UTC).
        batch: a name made of letters, digits and ``_.-``.
        covariate_drift: 0..1, how far the inputs shift.
        concept_drift: 0..1, how far the fraud rule moves to its new form.

    Returns:
        One row per transaction with the landing dtypes (event_time UTC, ints as Int64).
    """
    _check_options(rows, batch, covariate_drift, concept_drift)
    start, end = default_window(start, end)
    rng = np.random.default_rng([seed, 0])
    times = _event_times(rng, rows, start, end)
    hour = (times // 3_600_000_000) % 24
    features = _features(rng, rows, covariate_drift)
    chance = _fraud_probability(features, hour, concept_drift, rng.normal(0.0, 0.5, rows))
    is_fraud = rng.random(rows) < chance
    return pd.DataFrame(
        {
            "transaction_id": [f"{batch}-{seed}-{i:08d}" for i in range(rows)],
            "event_time": pd.DatetimeIndex(times.view("datetime64[us]")).tz_localize("UTC"),
            "amount": features["amount"],
            "merchant_category": np.array(CATEGORIES, dtype=object)[features["category"]],
            "country": np.array(COUNTRIES, dtype=object)[features["country"]],
            "device": np.array(DEVICES, dtype=object)[features["device"]],
            "hour_of_day": pd.array(hour, dtype="Int64"),
            "customer_age": pd.arrays.IntegerArray(features["age"], features["age_missing"]),
            "account_tenure_days": pd.array(features["tenure"], dtype="Int64"),
            "is_fraud": is_fraud.astype(np.int8),
        },
        columns=list(COLUMNS),
    )


def _check_options(rows: int, batch: str, covariate_drift: float, concept_drift: float) -> None:
    if rows < 0:
        raise ValueError(f"rows = {rows}: expected a count >= 0")
    if not _BATCH.match(batch):
        raise ValueError(f"batch = {batch!r}: expected letters, digits and _.- only")
    for name, value in (("covariate_drift", covariate_drift), ("concept_drift", concept_drift)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} = {value}: expected a number between 0 and 1")


def _event_times(rng: np.random.Generator, rows: int, start: datetime, end: datetime) -> np.ndarray:
    """Sorted epoch microseconds (whole milliseconds) in ``[start, end)``, denser by day than by night."""
    low, high = int(start.timestamp() * 1e6), int(end.timestamp() * 1e6)
    accept = _HOUR_WEIGHT / _HOUR_WEIGHT.max()
    kept: list[np.ndarray] = []
    while sum(len(k) for k in kept) < rows:
        draw = rng.integers(low, high, size=max(2 * rows, 16))
        kept.append(draw[rng.random(len(draw)) < accept[(draw // 3_600_000_000) % 24]])
    times = np.sort(np.concatenate(kept)[:rows]) if rows else np.zeros(0, dtype=np.int64)
    return times - times % 1000  # files carry milliseconds; the frame says exactly what they say


def _mix(base: np.ndarray, drifted: np.ndarray, amount: float) -> np.ndarray:
    p = (1.0 - amount) * base + amount * drifted
    mixed: np.ndarray = p / p.sum()
    return mixed


def _features(rng: np.random.Generator, rows: int, drift: float) -> dict[str, np.ndarray]:
    """Inputs drawn from their distributions, moved toward the drifted ones by ``drift``."""
    category = rng.choice(len(CATEGORIES), size=rows, p=_mix(_CATEGORY_P, _CATEGORY_P_DRIFTED, drift))
    country = rng.choice(len(COUNTRIES), size=rows, p=_mix(_COUNTRY_P, _COUNTRY_P_DRIFTED, drift))
    device = rng.choice(len(DEVICES), size=rows, p=_mix(_DEVICE_P, _DEVICE_P_DRIFTED, drift))
    mu = np.log(_AMOUNT_MEDIAN[category]) + 0.5 * drift
    amount = np.round(np.clip(np.exp(rng.normal(mu, _AMOUNT_SIGMA[category])), 0.5, _MAX_AMOUNT), 2)
    age = np.clip(np.round(rng.normal(44 - 12 * drift, 15, rows)), 18, 95).astype(np.int64)
    new_account = rng.random(rows) < 0.08 + 0.12 * drift
    tenure = np.where(
        new_account,
        rng.integers(0, 30, rows),
        np.clip(np.exp(rng.normal(np.log(900), 1.0, rows)), 30, 20_000),
    ).astype(np.int64)
    return {
        "category": category,
        "country": country,
        "device": device,
        "amount": amount,
        "age": age,
        "age_missing": rng.random(rows) < 0.02,
        "tenure": tenure,
    }


def _fraud_probability(
    f: dict[str, np.ndarray], hour: np.ndarray, concept_drift: float, noise: np.ndarray
) -> np.ndarray:
    """The chance of fraud: the original rule, blended toward the drifted one by ``concept_drift``."""
    original = _sigmoid(_original_logit(f, hour) + noise)
    if concept_drift == 0.0:
        return original
    return (1.0 - concept_drift) * original + concept_drift * _sigmoid(_drifted_logit(f, hour) + noise)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    probability: np.ndarray = 1.0 / (1.0 + np.exp(-x))
    return probability


def _original_logit(f: dict[str, np.ndarray], hour: np.ndarray) -> np.ndarray:
    """Large amounts in risky categories, nights, new accounts on the web, some countries, young customers."""
    risky = _CATEGORY_RISK[f["category"]]
    large = _sigmoid(2.0 * (np.log(f["amount"]) - np.log(150.0)))
    night = (hour <= 5).astype(float)
    new = (f["tenure"] < 30).astype(float)
    web = (f["device"] == DEVICES.index("web")).astype(float)
    young = ((f["age"] < 25) & ~f["age_missing"]).astype(float)
    logit: np.ndarray = (
        -5.55
        + 3.4 * risky * large
        + 1.8 * night
        + 1.4 * night * (risky > 0)
        + 3.0 * new * web
        + 0.8 * new
        + 1.6 * _COUNTRY_RISK[f["country"]]
        + 0.8 * young
    )
    return logit


def _drifted_logit(f: dict[str, np.ndarray], hour: np.ndarray) -> np.ndarray:
    """Small grocery and utility payments on mobile during the day."""
    everyday = np.isin(f["category"], [CATEGORIES.index("grocery"), CATEGORIES.index("utilities")]).astype(
        float
    )
    small = (f["amount"] < 40).astype(float)
    mobile = (f["device"] == DEVICES.index("mobile")).astype(float)
    day = ((hour >= 9) & (hour <= 17)).astype(float)
    logit: np.ndarray = (
        -5.9 + 3.2 * everyday * small + 1.2 * mobile + 1.2 * day + 1.6 * everyday * mobile * day
    )
    return logit


# -- messages (for a Kafka topic) ---------------------------------------------------------


def messages(
    rows: int,
    seed: int = 0,
    start: datetime | None = None,
    end: datetime | None = None,
    batch: str = "demo",
    covariate_drift: float = 0.0,
    concept_drift: float = 0.0,
    malformed_fraction: float = 0.0,
) -> tuple[list[bytes | None], list[bytes], dict[str, Any]]:
    """The demo events as Kafka messages: keys (the event key) and JSON values, in event-time order.

    Malformed records (the JSON Lines kinds) are values of raw bytes like any other; a
    ``null_key`` record has no message key either. Arguments as for :func:`produce`.

    Returns:
        ``(keys, values, summary)``; the summary has the keys :func:`produce` returns, less the files.
    """
    _check_files("jsonl", 1, malformed_fraction)
    start, end = default_window(start, end)
    frame = generate(rows, seed, start, end, batch, covariate_drift, concept_drift)
    kinds = _malformed_plan(np.random.default_rng([seed, 1]), rows, malformed_fraction, MALFORMED_JSONL)
    values = _jsonl(frame, kinds).split(b"\n")[:-1] if rows else []
    keys = [
        None if kinds.get(i) == "null_key" else key.encode() for i, key in enumerate(frame["transaction_id"])
    ]
    clean = frame.drop(index=list(kinds))
    summary = {
        "rows": rows,
        "format": "jsonl",
        "batch": batch,
        "seed": seed,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "fraud_rate": round(float(clean["is_fraud"].mean()), 6) if len(clean) else None,
        "malformed": len(kinds),
        "malformed_kinds": dict(sorted(Counter(kinds.values()).items())),
        "covariate_drift": covariate_drift,
        "concept_drift": concept_drift,
    }
    return keys, values, summary


# -- writing files ------------------------------------------------------------------------


def produce(
    out: str,
    rows: int,
    seed: int = 0,
    start: datetime | None = None,
    end: datetime | None = None,
    files: int = 1,
    fmt: str = "jsonl",
    batch: str = "demo",
    covariate_drift: float = 0.0,
    concept_drift: float = 0.0,
    malformed_fraction: float = 0.0,
    storage_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``files`` files ``<batch>-<k>.<fmt>`` of demo events into a folder or fsspec URL.

    Rows are split in event-time order across the files. Each file is written
    under a hidden temporary name and then moved into place, so a reader never
    sees half a file.

    Args:
        out: the folder or fsspec URL (created when missing).
        rows, seed, start, end, batch, covariate_drift, concept_drift: see :func:`generate`.
        files: how many files to split the rows into.
        fmt: ``jsonl``, ``csv`` or ``parquet``.
        malformed_fraction: share of records replaced by malformed ones
            (:data:`MALFORMED_KINDS` lists the kinds each format can carry).
        storage_options: for an fsspec URL, the filesystem's options (an S3 endpoint and credentials).

    Returns:
        A JSON-able summary: rows, files, paths, fraud_rate, malformed, malformed_kinds, ...
    """
    _check_files(fmt, files, malformed_fraction)
    start, end = default_window(start, end)
    frame = generate(rows, seed, start, end, batch, covariate_drift, concept_drift)
    kinds = _malformed_plan(np.random.default_rng([seed, 1]), rows, malformed_fraction, MALFORMED_KINDS[fmt])
    fs, root = fsspec.core.url_to_fs(out, **(storage_options or {}))
    fs.makedirs(root, exist_ok=True)
    paths = []
    for k, part in enumerate(np.array_split(np.arange(rows), files)):
        data = _SERIALISERS[fmt](frame.iloc[part].reset_index(drop=True), _local(kinds, part))
        paths.append(_write(fs, root, f"{batch}-{k}.{fmt}", data))
    clean = frame.drop(index=list(kinds))
    return {
        "rows": rows,
        "files": files,
        "format": fmt,
        "batch": batch,
        "seed": seed,
        "paths": paths,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "fraud_rate": round(float(clean["is_fraud"].mean()), 6) if len(clean) else None,
        "malformed": len(kinds),
        "malformed_kinds": dict(sorted(Counter(kinds.values()).items())),
        "covariate_drift": covariate_drift,
        "concept_drift": concept_drift,
    }


def _check_files(fmt: str, files: int, malformed_fraction: float) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"fmt = {fmt!r}: expected one of {FORMATS}")
    if files < 1:
        raise ValueError(f"files = {files}: expected at least 1")
    if not 0.0 <= malformed_fraction <= 1.0:
        raise ValueError(f"malformed_fraction = {malformed_fraction}: expected a number between 0 and 1")


def _write(fs: fsspec.AbstractFileSystem, root: str, name: str, data: bytes) -> str:
    final, tmp = f"{root}/{name}", f"{root}/.{name}.tmp"
    with fs.open(tmp, "wb") as fh:
        fh.write(data)
    fs.mv(tmp, final)
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return final if protocol in ("file", "local") else fs.unstrip_protocol(final)


def _malformed_plan(
    rng: np.random.Generator, rows: int, fraction: float, kinds: tuple[str, ...]
) -> dict[int, str]:
    """Which rows become malformed, and how: every kind once before any repeats."""
    count = int(round(fraction * rows))
    if count == 0:
        return {}
    where = np.sort(rng.choice(rows, size=count, replace=False))
    order = np.array(kinds)[np.arange(count) % len(kinds)]
    rng.shuffle(order)
    return {int(i): str(kind) for i, kind in zip(where, order, strict=True)}


def _local(kinds: dict[int, str], part: np.ndarray) -> dict[int, str]:
    """The malformed rows of one file, numbered from the file's first row."""
    if not len(part):
        return {}
    return {i - int(part[0]): kind for i, kind in kinds.items() if part[0] <= i <= part[-1]}


def _iso(times: pd.Series, zone: str = "Z") -> np.ndarray:
    """``2024-05-01T10:00:00.123Z`` strings (millisecond precision; ``zone`` is the suffix)."""
    naive = times.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ms]")
    text = np.datetime_as_string(naive, unit="ms")
    return np.char.add(text, zone) if zone else text


# -- JSON Lines ---------------------------------------------------------------------------

_LINE = (
    '{"transaction_id":"%s","event_time":"%sZ","amount":%d.%02d,"merchant_category":"%s","country":"%s",'
    '"device":"%s","hour_of_day":%d,"customer_age":%s,"account_tenure_days":%d,"is_fraud":%d}'
)


def _jsonl(frame: pd.DataFrame, malformed: dict[int, str]) -> bytes:
    """JSON Lines built with one format string per row (the keys and categories need no escaping)."""
    ages = frame["customer_age"].astype(object).where(frame["customer_age"].notna(), "null").astype(str)
    cents = np.round(frame["amount"].to_numpy() * 100).astype(np.int64)
    columns = (
        frame["transaction_id"],
        _iso(frame["event_time"], zone="").tolist(),
        (cents // 100).tolist(),
        (cents % 100).tolist(),
        frame["merchant_category"],
        frame["country"],
        frame["device"],
        frame["hour_of_day"].to_numpy(int).tolist(),
        ages.tolist(),
        frame["account_tenure_days"].to_numpy(int).tolist(),
        frame["is_fraud"].tolist(),
    )
    lines = [_LINE % row for row in zip(*columns, strict=True)]
    for i, kind in malformed.items():
        lines[i] = _malformed_line(kind, json.loads(lines[i]), lines[i])
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape") if lines else b""


def _malformed_line(kind: str, row: dict[str, Any], line: str) -> str:
    """One broken record of the given kind, made from a clean one."""
    changes: dict[str, Any] = {
        "wrong_type": {"amount": "abc"},
        "nan_amount": {"amount": float("nan")},
        "inf_amount": {"amount": float("inf")},
        "bad_timestamp": {"event_time": "not-a-timestamp"},
        "ancient_timestamp": {"event_time": "1970-01-01T00:00:00Z"},
        "future_timestamp": {"event_time": "2200-01-01T00:00:00Z"},
        "null_key": {"transaction_id": None},
        "non_utf8": {"merchant_category": row["merchant_category"] + "\udcff"},
        "oversized": {"note": "x" * _OVERSIZED_BYTES},
        "float_hour": {"hour_of_day": row["hour_of_day"] + 0.5},
        "numeric_category": {"device": 7},
        "bad_label": {"is_fraud": 2},
        "bool_amount": {"amount": True},
    }
    if kind == "not_json":
        return f"not json: {row['transaction_id']}"
    if kind == "truncated":
        return line[: len(line) // 2]
    if kind == "missing_field":
        return json.dumps({k: v for k, v in row.items() if k != "amount"})
    if kind == "json_array":
        return json.dumps(list(row.values()))
    return json.dumps({**row, **changes[kind]}, ensure_ascii=False)


# -- CSV and Parquet ----------------------------------------------------------------------

_TABULAR_VALUES: dict[str, tuple[str, Any]] = {
    "wrong_type": ("amount", "abc"),
    "missing_field": ("amount", None),
    "inf_amount": ("amount", "inf"),
    "bad_timestamp": ("event_time", "not-a-timestamp"),
    "ancient_timestamp": ("event_time", "1970-01-01T00:00:00Z"),
    "future_timestamp": ("event_time", "2200-01-01T00:00:00Z"),
    "null_key": ("transaction_id", None),
    "bad_label": ("is_fraud", "2"),
}


_KIND_COLUMN = {
    **{kind: column for kind, (column, _) in _TABULAR_VALUES.items()},
    "float_hour": "hour_of_day",
}


def _inject(frame: pd.DataFrame, malformed: dict[int, str], as_text: bool) -> pd.DataFrame:
    """The frame with malformed values put in; touched columns become objects (text for Parquet)."""
    out = frame.copy()
    for column in sorted({_KIND_COLUMN[k] for k in malformed.values() if k in _KIND_COLUMN}):
        out[column] = _as_text(out[column]) if as_text else out[column].astype(object)
    for i, kind in malformed.items():
        if kind == "float_hour":
            out.at[i, "hour_of_day"] = f"{int(frame.at[i, 'hour_of_day'])}.5"
        elif kind in _TABULAR_VALUES:
            column, value = _TABULAR_VALUES[kind]
            out.at[i, column] = value
    return out


def _as_text(column: pd.Series) -> pd.Series:
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        return pd.Series(_iso(column), index=column.index, dtype=object)
    values = column.astype(object)
    return pd.Series([None if pd.isna(v) else str(v) for v in values], index=column.index, dtype=object)


def _csv(frame: pd.DataFrame, malformed: dict[int, str]) -> bytes:
    base = frame.assign(event_time=_iso(frame["event_time"]).astype(object))
    lines = _inject(base, malformed, as_text=False).to_csv(index=False, lineterminator="\n").split("\n")
    for i, kind in malformed.items():
        if kind == "truncated":
            lines[i + 1] = lines[i + 1][: len(lines[i + 1]) // 2]
    return "\n".join(lines).encode()


def _parquet(frame: pd.DataFrame, malformed: dict[int, str]) -> bytes:
    buffer = io.BytesIO()
    table = pa.Table.from_pandas(_inject(frame, malformed, as_text=True), preserve_index=False)
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


_SERIALISERS = {"jsonl": _jsonl, "csv": _csv, "parquet": _parquet}
