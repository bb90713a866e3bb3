"""Row rules shared by every source: decode raw records, then type them or say why not.

A source (files today, Kafka later) turns its input into a frame of raw values
(object dtype, one column per field, ``None`` where a field is absent or null)
and hands it to :func:`coerce`, which returns the typed rows and, for every other
row, one short reason naming the field and the value. The first failing rule of
a row wins; fields are checked in the order key, event time, feature columns,
target.

Only the shape of a value is a row rule: a number where a number belongs, a
parseable time inside the accepted range, a 0/1 label. Ranges and category
membership are left to the validation gate, so an out-of-range amount or an
unknown category is landed.

Conventions for raw values in an object column: ``None``, ``pd.NA``, ``NaT`` and
the empty string are *missing*; a float ``NaN`` is a value (and not a finite
number). In a column that already has a numeric dtype, ``NaN`` is missing, as
pandas has it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.api.types import infer_dtype

from pipelines.common.config import IngestConfig, Schema

try:  # optional fast path; the standard library decides (and explains) every line orjson rejects
    import orjson

    _fast_loads: Callable[[bytes], Any] | None = orjson.loads
except ImportError:  # pragma: no cover - depends on the environment
    _fast_loads = None

ORIGIN, RAW = "_origin", "_raw"
EPOCH_MS_FROM = 1e11  # epoch numbers at or above this are milliseconds, below it seconds
_MAX_EPOCH_SECONDS = 9.0e9  # year ~2255: epoch numbers beyond it are out of range (and kept from overflowing)
_NUMERIC_KINDS = {"integer", "floating", "mixed-integer-float", "empty"}
_TRUE_FALSE = {"true": 1, "false": 0}
_SHOW_CHARS = 60

EXPECT_NUMBER = "expected a number"
EXPECT_FINITE = "expected a finite number"
EXPECT_INTEGER = "expected an integer"
EXPECT_CATEGORY = "expected a string category"
EXPECT_KEY = "expected a string or integer key"
EXPECT_TIME = "expected an ISO-8601 time or epoch seconds/ms"
EXPECT_LABEL = "expected 0/1 or true/false"
EXPECT_CLASS = "expected a class label (text or a whole number)"


# -- the fields of a schema ---------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One field a record must (or may) carry, and how to read it."""

    name: str
    kind: str  # key | time | target | float | int | category
    required: bool = True


def fields(schema: Schema) -> tuple[Field, ...]:
    """The fields of a record in checking order: key, event time, feature columns, target."""
    columns = tuple(Field(c.name, c.type, c.required) for c in schema.columns)
    return (
        Field(schema.key, "key"),
        Field(schema.event_time, "time"),
        *columns,
        Field(schema.target, TARGET_KINDS[schema.task]),
    )


# How each task's target is read: a 0/1 label (int8), a class label (text), or a number (float64).
TARGET_KINDS = {"binary": "target", "multiclass": "label", "regression": "float"}


def arrow_schema(schema: Schema, with_origin: bool = True) -> pa.Schema:
    """The Arrow types of a landed or validated frame (see docs/architecture.md, "Data tiers")."""
    types = {
        "key": pa.string(),
        "time": pa.timestamp("us", tz="UTC"),
        "target": pa.int8(),
        "label": pa.string(),
        "float": pa.float64(),
        "int": pa.int64(),
        "category": pa.string(),
    }
    out = [pa.field(f.name, types[f.kind]) for f in fields(schema)]
    return pa.schema(out + ([pa.field(ORIGIN, pa.string())] if with_origin else []))


def dictionary_columns(schema: Schema) -> list[str]:
    """The landed columns of few distinct values (categories, class labels): the ones a Parquet
    dictionary pays for."""
    return [f.name for f in fields(schema) if f.kind in ("category", "label")]


# -- decoding -----------------------------------------------------------------------------


def quarantine_entry(origin: str, raw: str | bytes, reason: str) -> dict[str, str]:
    """One quarantined record: where it came from, its raw text, and why it was refused."""
    return {"origin": origin, "raw": raw_text(raw), "reason": reason}


@dataclass
class JsonLines:
    """The decoded records of a JSON Lines file, with their origins and raw lines (bytes)."""

    objects: list[dict[str, Any]]
    origins: list[str]
    raws: list[bytes]
    quarantined: list[dict[str, Any]]

    def frame(self, names: Iterable[str]) -> pd.DataFrame:
        """The raw frame of the named fields plus ``_origin`` and ``_raw`` (bytes)."""
        frame = frame_from_objects(self.objects, names)
        frame[ORIGIN] = np.array(self.origins, dtype=object)
        frame[RAW] = np.fromiter(self.raws, dtype=object, count=len(self.raws))
        return frame


_JSON_CHUNK = 4096


def read_json_lines(data: bytes, origin: str, max_record_bytes: int, first_line: int = 1) -> JsonLines:
    """Decode JSON Lines: one object per line, or a quarantine entry saying why not.

    A line is quarantined when it is larger than ``max_record_bytes``, not UTF-8,
    not JSON, or JSON but not an object. Blank lines are skipped, not counted.
    Origins are ``<origin>:<line>`` with 1-based line numbers; ``data`` starts at line
    ``first_line`` of its file (a batch of a streamed file). Chunks of clean
    lines are decoded in one call; a chunk with any problem is redone line by line.
    """
    if first_line == 1:
        data = data.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark is not a record
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()  # the newline that ends the file
    out = JsonLines([], [], [], [])
    numbers: list[int] = []
    for lo in range(0, len(lines), _JSON_CHUNK):
        chunk = lines[lo : lo + _JSON_CHUNK]
        objects = _decode_clean_chunk(chunk, max_record_bytes)
        if objects is not None:
            out.objects += objects
            out.raws += chunk
            numbers += range(first_line + lo, first_line + lo + len(chunk))
        else:
            _decode_lines(chunk, first_line - 1 + lo, origin, max_record_bytes, out, numbers)
    out.origins = [f"{origin}:{n}" for n in numbers]
    return out


def _decode_clean_chunk(chunk: list[bytes], max_record_bytes: int) -> list[dict[str, Any]] | None:
    """All the chunk's objects when every line is a small JSON object, else None."""
    if _fast_loads is None or not chunk or max(map(len, chunk)) > max_record_bytes:
        return None
    try:
        objects = list(map(_fast_loads, chunk))
    except ValueError:
        return None
    return objects if all(type(o) is dict for o in objects) else None


def _decode_lines(
    chunk: list[bytes], lo: int, origin: str, max_record_bytes: int, out: JsonLines, numbers: list[int]
) -> None:
    fast = _fast_loads or _never
    for number, line in enumerate(chunk, start=lo + 1):
        if not line or line.isspace():
            continue
        try:
            obj = fast(line) if len(line) <= max_record_bytes else None
        except ValueError:
            obj = None
        if type(obj) is not dict:  # the standard library decides, and says why
            obj, reason = decode_json_record(line.rstrip(b"\r"), max_record_bytes)
            if reason is not None:
                out.quarantined.append(quarantine_entry(f"{origin}:{number}", line, reason))
                continue
            assert obj is not None  # no reason: an object
            del obj[RAW]
        out.objects.append(obj)
        out.raws.append(line)
        numbers.append(number)


def _never(data: bytes) -> Any:
    raise ValueError("no fast JSON decoder")


def decode_json_lines(
    data: bytes, origin: str, max_record_bytes: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split JSON Lines into objects and quarantine entries (see :func:`read_json_lines`).

    Each object gets ``_origin`` (``file.jsonl:12``) and ``_raw`` (its line, as text).

    Args:
        data: the file's bytes.
        origin: the name that prefixes each record's origin.
        max_record_bytes: larger lines are quarantined unread.

    Returns:
        ``(objects, quarantined)``.
    """
    decoded = read_json_lines(data, origin, max_record_bytes)
    for obj, where, raw in zip(decoded.objects, decoded.origins, decoded.raws, strict=True):
        obj[ORIGIN] = where
        obj[RAW] = raw_text(raw)
    return decoded.objects, decoded.quarantined


def raw_text(raw: str | bytes) -> str:
    """A raw record as text: bytes decoded as UTF-8, invalid bytes escaped, line ending dropped."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "backslashreplace")
    return raw.rstrip("\r\n")


def decode_json_record(data: bytes, max_record_bytes: int) -> tuple[dict[str, Any], None] | tuple[None, str]:
    """Decode one JSON record (a line or a message) into ``(object, None)`` or ``(None, reason)``.

    The object carries its text as ``_raw``.
    """
    if len(data) > max_record_bytes:
        return None, f"oversized record: {len(data)} bytes > max_record_bytes {max_record_bytes}"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8: invalid byte 0x{data[exc.start]:02x} at byte {exc.start + 1}"
    obj, reason = _loads(text)
    if reason is not None:
        return None, reason
    if not isinstance(obj, dict):
        return None, f"not a JSON object: got {_json_type(obj)}"
    if "\\u" in text and _has_lone_surrogate(obj):
        return None, "not UTF-8: a \\u escape decodes to a lone surrogate (no valid character)"
    obj[RAW] = text
    return obj, None


def _has_lone_surrogate(obj: dict[str, Any]) -> bool:
    """Whether a decoded object holds text that UTF-8 (and so Parquet) cannot store."""
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


NO_VALUE = "empty message: no value (a tombstone)"


def decode_json_values(
    values: list[bytes | None], max_record_bytes: int
) -> tuple[list[dict[str, Any]], list[int], list[tuple[int, str]]]:
    """Decode one JSON object per value (a message), or say why not.

    The values of a message source, unlike lines, may hold newlines, and an
    empty or missing value is a record too (quarantined, never skipped).
    Chunks of clean values are decoded in one call; a chunk with any problem is
    redone value by value with :func:`decode_json_record`, which explains.

    Returns:
        ``(objects, positions, refused)``: the objects and the positions they had
        in ``values``, and ``(position, reason)`` for every other value.
    """
    objects: list[dict[str, Any]] = []
    positions: list[int] = []
    refused: list[tuple[int, str]] = []
    for lo in range(0, len(values), _JSON_CHUNK):
        chunk = values[lo : lo + _JSON_CHUNK]
        clean = None if None in chunk else _decode_clean_chunk(chunk, max_record_bytes)  # type: ignore[arg-type]
        if clean is not None:
            objects += clean
            positions += range(lo, lo + len(chunk))
            continue
        for position, value in enumerate(chunk, start=lo):
            obj, reason = (None, NO_VALUE) if value is None else decode_json_record(value, max_record_bytes)
            if reason is not None:
                refused.append((position, reason))
                continue
            assert obj is not None  # no reason: an object
            del obj[RAW]
            objects.append(obj)
            positions.append(position)
    return objects, positions, refused


_ARROW_JSON_TYPES: dict[str, tuple[Callable[[pa.DataType], bool], ...]] = {  # what each kind takes as is
    "key": (pa.types.is_string, pa.types.is_int64),
    "time": (pa.types.is_string,),
    "float": (pa.types.is_float64, pa.types.is_int64),
    "int": (pa.types.is_int64,),  # a float there (1.5, or 2 beside 2.5) is for the per-record rules
    "target": (pa.types.is_int64, pa.types.is_boolean),
    "label": (pa.types.is_string, pa.types.is_int64),  # a float class (2.0) is for the per-record rules
    "category": (pa.types.is_string,),
}


def frame_from_json_values(
    values: list[bytes | None], schema: Schema, max_record_bytes: int
) -> pd.DataFrame | None:
    """The raw frame of the schema's fields in ``values`` (a JSON object each), decoded by Arrow in one call.

    The fast path of a message source: columns of plain numbers come out as numbers (``coerce`` types
    them as it does a Parquet file's), strings as objects. None when any value needs
    :func:`decode_json_values`' per-record rules (see :func:`json_values_table`).
    """
    table = json_values_table(values, schema, max_record_bytes)
    return None if table is None else json_table_frame(table)


def json_table_frame(table: pa.Table) -> pd.DataFrame:
    """The raw frame of a table :func:`json_values_table` read (the table is spent)."""
    frame = table.to_pandas(split_blocks=True, self_destruct=True)
    frame.index = pd.RangeIndex(len(frame))
    return frame


def json_values_table(values: list[bytes | None], schema: Schema, max_record_bytes: int) -> pa.Table | None:
    """The schema's fields present in ``values`` as read by Arrow, or None when the values need the per-record
    rules, which decide and explain: a missing, empty, oversized or multi-line value, one not starting with
    ``{``, ``NaN``/``Infinity``, JSON Arrow refuses (not an object, a field of two types or given twice,
    text that is not UTF-8 or a lone surrogate escape, a time or category that is not a string), a column
    of another type than its field takes as is (a float in an integer field, a key beyond 64 bits, a
    nested value), or a row count that does not match.
    """
    import pyarrow.json as pa_json

    if not values or None in values:
        return None
    blob = b"\n".join(values)  # type: ignore[arg-type]  # None was ruled out above
    if (
        blob.count(b"\n") != len(values) - 1  # no value holds a newline: one line each
        or not all(map(bytes.startswith, values, repeat(b"{")))  # type: ignore[arg-type]  # each starts an object
        or max(map(len, values)) > max_record_bytes  # type: ignore[arg-type]
    ):
        return None
    options = pa_json.ReadOptions(use_threads=False, block_size=max(1 << 20, len(blob) + 1))
    text = [pa.field(f.name, pa.string()) for f in fields(schema) if f.kind in ("time", "category")]
    parsing = pa_json.ParseOptions(explicit_schema=pa.schema(text), unexpected_field_behavior="infer")
    try:  # times and categories stay text (Arrow would infer timestamps), numbers there refuse the chunk
        table = pa_json.read_json(pa.BufferReader(blob), read_options=options, parse_options=parsing)
        present = [f for f in fields(schema) if f.name in table.column_names]
        table = table.select([f.name for f in present])
        if table.num_rows != len(values) or not all(
            pa.types.is_null(t) or any(ok(t) for ok in _ARROW_JSON_TYPES[f.kind])
            for f, t in zip(present, table.schema.types, strict=True)
        ):
            return None
        floats = [c for c in table.columns if pa.types.is_float64(c.type)]
        if any(c.null_count < len(c) and not pc.all(pc.is_finite(c)).as_py() for c in floats):
            return None  # NaN or Infinity, which Arrow reads and the JSON standard has not
        table.validate(full=True)  # UTF-8 of every string
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None
    return table


def typed_json_table(
    table: pa.Table, schema: Schema, cfg: IngestConfig, now: pd.Timestamp
) -> pa.Table | None:
    """The typed rows of values :func:`json_values_table` read, as Arrow, when each passes every row rule.

    The common case of a message source, typed without leaving Arrow: the same rows, types and values
    :func:`coerce` gives (the landing schema, without ``_origin``), at a fraction of its cost. None when
    any value would be refused or needs a rule only :func:`coerce` applies (a missing required field,
    an empty string, a time outside the accepted range or not ISO-8601 text, a target other than 0/1,
    an integer beyond 2**53, a class label that is not text or a whole number): the caller then types
    the chunk with :func:`coerce`, which decides and explains.
    """
    bounds = _time_bounds(cfg, _utc(now))
    target = arrow_schema(schema, with_origin=False)
    columns = []
    for field, out_type in zip(fields(schema), target.types, strict=True):
        if field.name not in table.column_names:
            if field.required:
                return None
            columns.append(pa.nulls(table.num_rows, out_type))
            continue
        try:
            column = _typed_column(table.column(field.name), field, out_type, bounds)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # whatever Arrow refuses, the rules decide
            return None
        if column is None:
            return None
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=target)


_LARGEST_EXACT_INT = 2**53  # coerce reads integers through float64: exact up to here


def _typed_column(
    column: pa.ChunkedArray, field: Field, out_type: pa.DataType, bounds: _Bounds
) -> pa.ChunkedArray | None:
    """One column typed as :func:`coerce` types it, or None when a value needs its rules."""
    if column.null_count and (field.required or field.kind in ("key", "time", "target")):
        return None
    if pa.types.is_null(column.type):
        return pa.chunked_array([pa.nulls(len(column), out_type)])
    if pa.types.is_string(column.type) and len(column) > column.null_count:
        if pc.any(pc.equal(column, "")).as_py():  # an empty string is missing: coerce decides
            return None
    kind = field.kind
    if kind in ("key", "category", "label") and pa.types.is_string(column.type):
        return column
    if kind in ("key", "label") and pa.types.is_int64(column.type):
        return column.cast(pa.string())
    if kind == "float":  # an integer beyond 2**53 rounds to the nearest float, as in coerce
        return column.cast(pa.float64(), safe=False)
    if kind == "int" and pa.types.is_int64(column.type):
        low, high = (x.as_py() for x in pc.min_max(column).values())
        exact = low is None or (-_LARGEST_EXACT_INT <= low and high <= _LARGEST_EXACT_INT)
        return column if exact else None
    if kind == "target":
        if pa.types.is_boolean(column.type):
            return column.cast(pa.int8())
        if pc.all(pc.is_in(column, pa.array([0, 1], pa.int64()))).as_py():
            return column.cast(pa.int8())
        return None
    if kind == "time":
        times = column.cast(out_type)  # ISO-8601 text, as coerce's first try; other text goes to the rules
        micros = times.cast(pa.int64())
        low, high = pc.min_max(micros).values()
        if low.as_py() < bounds.low_us or high.as_py() > bounds.high_us:
            return None
        return times
    return None


def _loads(text: str) -> tuple[Any, str | None]:
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"not JSON: {exc.msg} (column {exc.colno})"
    except (ValueError, RecursionError) as exc:
        return None, f"not JSON: {exc}"


def _json_type(obj: Any) -> str:
    names = {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if obj is None else names.get(type(obj), type(obj).__name__)


def frame_from_objects(objects: list[dict[str, Any]], names: Iterable[str]) -> pd.DataFrame:
    """A raw frame (object dtype) of the named fields; an absent field is ``None``.

    Building it this way (rather than ``pd.DataFrame(objects)``) keeps a JSON ``NaN``
    apart from a missing field and never infers dtypes.
    """
    count = len(objects)
    data = {
        name: np.fromiter(map(dict.get, objects, repeat(name)), dtype=object, count=count) for name in names
    }
    return pd.DataFrame(data, index=pd.RangeIndex(count))


# -- coercion -----------------------------------------------------------------------------

Problems = dict[int, str]  # row position -> reason; sparse, since bad rows are rare


def coerce(
    raw: pd.DataFrame, schema: Schema, cfg: IngestConfig, now: pd.Timestamp
) -> tuple[pd.DataFrame, pd.Series]:
    """Type the rows of a raw frame, or give each bad row its first failing reason.

    Args:
        raw: raw values, one column per field (absent columns count as missing).
        schema: the dataset's fields.
        cfg: the ingest section (event time bounds).
        now: the current time; events after ``now + max_future_minutes`` are refused.

    Returns:
        ``(typed, reasons)``: the good rows with the landing dtypes, indexed like
        ``raw``, holding only the schema's fields; and a string Series of reasons
        indexed like the bad rows.
    """
    bounds = _time_bounds(cfg, _utc(now))
    reasons: Problems = {}
    typed: dict[str, Any] = {}
    for field in fields(schema):
        typed[field.name], problems = _PARSERS[field.kind](_column(raw, field.name), field, bounds)
        for position, reason in problems.items():
            reasons.setdefault(position, reason)
    bad = np.array(sorted(reasons), dtype=np.int64)
    good = np.ones(len(raw), dtype=bool)
    good[bad] = False
    frame = pd.DataFrame({name: values[good] for name, values in typed.items()}, index=raw.index[good])
    messages = pd.Series([reasons[i] for i in bad], index=raw.index[bad], dtype=object, name="reason")
    return frame, messages


def reason_kind(reason: str) -> str:
    """A reason with its value elided, for counting: ``field 'amount': expected a number``."""
    if reason.startswith("field ") and " = " in reason and ": " in reason:
        return f"{reason.split(' = ', 1)[0]}: {reason.rsplit(': ', 1)[1]}"
    if reason.startswith(("missing required field", "null key")):
        return reason
    return reason.split(": ", 1)[0]


def _column(raw: pd.DataFrame, name: str) -> np.ndarray:
    if name not in raw.columns:
        return np.full(len(raw), None, dtype=object)
    column: np.ndarray = raw[name].to_numpy()
    return column


def _utc(ts: pd.Timestamp | dt.datetime | str) -> pd.Timestamp:
    ts = pd.Timestamp(ts)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


@dataclass(frozen=True)
class _Bounds:
    low_us: int
    high_us: int
    text: str


def _time_bounds(cfg: IngestConfig, now: pd.Timestamp) -> _Bounds:
    low = _utc(cfg.min_event_time)
    high = now + pd.Timedelta(minutes=cfg.max_future_minutes)
    text = f"outside [{cfg.min_event_time}, now + {cfg.max_future_minutes} min]"
    return _Bounds(low.value // 1000, high.value // 1000, text)  # Timestamp.value is in ns


def _show(value: Any) -> str:
    """A short, readable rendering of a raw value for a reason."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str) and len(value) > _SHOW_CHARS:
        value = value[: _SHOW_CHARS - 3] + "..."
    text = repr(value)
    return text if len(text) <= _SHOW_CHARS + 2 else text[:_SHOW_CHARS] + "..."


def _flag(problems: Problems, mask: np.ndarray, values: np.ndarray, name: str, message: str) -> None:
    """Note ``field 'name' = value: message`` where ``mask`` holds and no problem is noted yet."""
    for i in np.flatnonzero(mask):
        if i not in problems:
            problems[int(i)] = f"field {name!r} = {_show(values[i])}: {message}"


def _missing(values: np.ndarray) -> np.ndarray:
    """Missing values: None/NA/NaT or ''; a float NaN in an object column is a value, not missing."""
    missing = np.asarray(pd.isna(values), dtype=bool)
    if values.dtype != object:
        return missing
    if missing.any():
        idx = np.flatnonzero(missing)
        missing[idx] = [not isinstance(values[i], float) for i in idx]
    missing_or_blank: np.ndarray = missing | (values == "")
    return missing_or_blank


def _missing_problems(values: np.ndarray, field: Field) -> tuple[np.ndarray, Problems]:
    """The missing mask, and a problem for each missing value of a required field."""
    missing = _missing(values)
    if not field.required or not missing.any():
        return missing, {}
    reason = f"null key {field.name!r}" if field.kind == "key" else f"missing required field {field.name!r}"
    return missing, dict.fromkeys(np.flatnonzero(missing).tolist(), reason)


def _is_bool(x: Any) -> bool:
    return isinstance(x, bool | np.bool_)


_type_of = np.frompyfunc(type, 1, 1)


def _types(values: np.ndarray) -> np.ndarray:
    """The Python type of each value (an object array), much faster than isinstance in a loop."""
    return _type_of(values) if len(values) else np.zeros(0, dtype=object)


def _to_floats(values: np.ndarray, missing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Floats of the values and a mask of those that are not numbers (booleans are not)."""
    if values.dtype != object:
        if values.dtype.kind in "iuf":
            return values.astype(np.float64), np.zeros(len(values), dtype=bool)
        return np.full(len(values), np.nan), np.ones(len(values), dtype=bool)
    if infer_dtype(values, skipna=True) in _NUMERIC_KINDS:  # plain numbers (and None/NaN)
        return np.where(missing, np.nan, values).astype(np.float64), np.zeros(len(values), dtype=bool)
    floats = np.asarray(pd.to_numeric(values, errors="coerce"), dtype=np.float64).copy()
    not_number = np.zeros(len(values), dtype=bool)
    if infer_dtype(values, skipna=False) not in _NUMERIC_KINDS | {"string"}:
        not_number = np.isin(_types(values), np.array([bool, np.bool_], dtype=object))
        floats[not_number] = np.nan
    for i in np.flatnonzero(np.isnan(floats) & ~not_number & ~missing):
        number = _py_float(values[i])
        not_number[i] = number is None
        floats[i] = np.nan if number is None else number
    return floats, not_number


def _py_float(x: Any) -> float | None:
    """Python's own reading of one value that pandas did not turn into a number."""
    if _is_bool(x) or not isinstance(x, str | int | float | np.integer | np.floating):
        return None
    try:
        return float(x.strip() if isinstance(x, str) else x)
    except (ValueError, OverflowError):
        return None


def _parse_numeric(values: np.ndarray, field: Field, bounds: _Bounds) -> tuple[Any, Problems]:
    missing, problems = _missing_problems(values, field)
    floats, not_number = _to_floats(values, missing)
    floats[missing] = np.nan
    _flag(problems, not_number & ~missing, values, field.name, EXPECT_NUMBER)
    _flag(problems, ~np.isfinite(floats) & ~missing, values, field.name, EXPECT_FINITE)
    if field.kind == "float":
        return floats, problems
    with np.errstate(invalid="ignore"):
        integral = (floats == np.round(floats)) & (np.abs(floats) < 2.0**63)
    _flag(problems, ~integral & ~missing, values, field.name, EXPECT_INTEGER)
    ints = np.where(integral, floats, 0).astype(np.int64)
    return pd.arrays.IntegerArray(ints, ~integral | missing), problems


def _parse_category(values: np.ndarray, field: Field, bounds: _Bounds) -> tuple[Any, Problems]:
    missing, problems = _missing_problems(values, field)
    out = values.astype(object, copy=True)
    out[missing] = None
    if infer_dtype(out, skipna=True) not in ("string", "empty"):
        wrong = ~np.isin(_types(out), np.array([str, np.str_], dtype=object)) & ~missing
        _flag(problems, wrong, values, field.name, EXPECT_CATEGORY)
    return out, problems


def _parse_key(values: np.ndarray, field: Field, bounds: _Bounds) -> tuple[Any, Problems]:
    missing, problems = _missing_problems(values, field)
    out = values.astype(object, copy=True)
    if infer_dtype(out, skipna=True) not in ("string", "empty"):
        for i in np.flatnonzero(~missing):
            x = out[i]
            if isinstance(x, int | np.integer) and not _is_bool(x):
                out[i] = str(int(x))
            elif not isinstance(x, str):
                problems.setdefault(int(i), f"field {field.name!r} = {_show(x)}: {EXPECT_KEY}")
    return out, problems


def _parse_label(values: np.ndarray, field: Field, bounds: _Bounds) -> tuple[Any, Problems]:
    """A multiclass label: text as it is, a whole number as its digits (``2`` and ``"2"`` are one class)."""
    missing, problems = _missing_problems(values, field)
    out = values.astype(object, copy=True)
    out[missing] = None
    for i in np.flatnonzero(~missing):
        x = out[i]
        if isinstance(x, int | np.integer) and not _is_bool(x):
            out[i] = str(int(x))
        elif isinstance(x, float | np.floating) and float(x).is_integer():
            out[i] = str(int(x))
        elif not isinstance(x, str):
            problems.setdefault(int(i), f"field {field.name!r} = {_show(x)}: {EXPECT_CLASS}")
    return out, problems


def _parse_target(values: np.ndarray, field: Field, bounds: _Bounds) -> tuple[Any, Problems]:
    missing, problems = _missing_problems(values, field)
    if values.dtype == object and infer_dtype(values, skipna=True) in _NUMERIC_KINDS | {"boolean"}:
        floats = np.where(missing, np.nan, values).astype(np.float64)
    elif values.dtype == object:
        floats = np.asarray(pd.to_numeric(values, errors="coerce"), dtype=np.float64).copy()
        for i in np.flatnonzero(np.isnan(floats) & ~missing):
            x = values[i]
            floats[i] = _TRUE_FALSE.get(x.strip().lower(), np.nan) if isinstance(x, str) else np.nan
    else:
        floats = values.astype(np.float64)
    label = (floats == 0) | (floats == 1)
    _flag(problems, ~label & ~missing, values, field.name, EXPECT_LABEL)
    return np.where(label, floats, 0).astype(np.int8), problems


# -- event time ---------------------------------------------------------------------------

_ARROW_CHUNK = 65_536
_PANDAS_PIECE = 256


def _parse_time(values: np.ndarray, field: Field, bounds: _Bounds) -> tuple[Any, Problems]:
    missing, problems = _missing_problems(values, field)
    micros = np.zeros(len(values), dtype=np.int64)
    state = np.zeros(len(values), dtype=np.int8)  # 0 ok, 1 not a time, 2 out of range
    present = np.flatnonzero(~missing)
    micros[present], state[present] = _micros(values[present])
    state[(state == 0) & ((micros < bounds.low_us) | (micros > bounds.high_us))] = 2
    state[missing] = 0
    _flag(problems, state == 1, values, field.name, EXPECT_TIME)
    _flag(problems, state == 2, values, field.name, bounds.text)
    micros[state != 0] = 0
    times = pd.DatetimeIndex(micros.view("datetime64[us]")).tz_localize("UTC")
    return times.array, problems


def _micros(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Microseconds since the epoch, and a state per value (0 ok, 1 not a time, 2 out of range)."""
    micros = np.zeros(len(values), dtype=np.int64)
    state = np.zeros(len(values), dtype=np.int8)
    if values.dtype.kind == "M":
        return pd.DatetimeIndex(values).as_unit("us").asi8, state
    if values.dtype.kind in "iuf":
        return _epoch_micros(values.astype(np.float64))
    kind = infer_dtype(values, skipna=False)
    groups = {"string": "s", "datetime": "d", "datetime64": "d"}
    labels = (
        np.full(len(values), groups.get(kind, "n"), dtype="<U1")
        if kind in groups or kind in _NUMERIC_KINDS
        else np.array([_time_kind(x) for x in values], dtype="<U1")
    )
    for label, convert in (("s", _string_micros), ("d", _datetime_micros), ("n", _number_micros)):
        idx = np.flatnonzero(labels == label)
        if len(idx):
            micros[idx], state[idx] = convert(values[idx])
    state[labels == "x"] = 1
    return micros, state


def _time_kind(x: Any) -> str:
    if isinstance(x, str):
        return "s"
    if isinstance(x, dt.datetime | np.datetime64):
        return "d"
    if isinstance(x, int | float | np.integer | np.floating) and not _is_bool(x):
        return "n"
    return "x"


def _epoch_micros(numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Epoch seconds (below 1e11) or milliseconds as microseconds."""
    with np.errstate(invalid="ignore", over="ignore"):
        seconds = np.where(np.abs(numbers) < EPOCH_MS_FROM, numbers, numbers / 1000.0)
        state = np.where(~np.isfinite(seconds), 1, np.where(np.abs(seconds) > _MAX_EPOCH_SECONDS, 2, 0))
        micros = np.where(state == 0, np.round(seconds * 1e6), 0).astype(np.int64)
    return micros, state.astype(np.int8)


def _number_micros(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return _epoch_micros(np.asarray(pd.to_numeric(values, errors="coerce"), dtype=np.float64))


def _datetime_micros(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    parsed = pd.to_datetime(pd.Series(values, dtype=object), utc=True, errors="coerce")
    state = np.where(parsed.isna().to_numpy(), 2, 0).astype(np.int8)  # a datetime pandas cannot hold
    return _as_micros(parsed), state


def _string_micros(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Strings, a chunk at a time: Arrow's ISO-8601 cast, else pandas (see :func:`_text_micros`)."""
    micros = np.zeros(len(values), dtype=np.int64)
    state = np.zeros(len(values), dtype=np.int8)
    for lo in range(0, len(values), _ARROW_CHUNK):
        part = slice(lo, lo + _ARROW_CHUNK)
        micros[part], state[part] = _iso_micros(pa.array(values[part], type=pa.string()), values[part])
    return micros, state


def _iso_micros(text: pa.Array, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Arrow's fast cast when every string parses; else halves, down to pandas for small pieces."""
    try:
        cast = text.cast(pa.timestamp("us", tz="UTC"))
        return cast.view(pa.int64()).to_numpy(), np.zeros(len(values), dtype=np.int8)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        if len(values) <= _PANDAS_PIECE:
            return _text_micros(values)
    mid = len(values) // 2
    (low, low_state), (high, high_state) = (
        _iso_micros(text[:mid], values[:mid]),
        _iso_micros(text[mid:], values[mid:]),
    )
    return np.concatenate([low, high]), np.concatenate([low_state, high_state])


def _text_micros(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ISO-8601 strings (naive ones are UTC), else epoch seconds/milliseconds written as digits (CSV)."""
    parsed = pd.to_datetime(pd.Series(values, dtype=object), utc=True, errors="coerce", format="ISO8601")
    micros = _as_micros(parsed)
    state = np.zeros(len(values), dtype=np.int8)
    idx = np.flatnonzero(parsed.isna().to_numpy())
    if len(idx):
        numbers = np.asarray(pd.to_numeric(values[idx], errors="coerce"), dtype=np.float64)
        micros[idx], state[idx] = _epoch_micros(numbers)
        text = np.flatnonzero(np.isnan(numbers))
        state[idx[text]] = [_unparsed_state(x) for x in values[idx[text]]]
    return micros, state


def _as_micros(parsed: pd.Series) -> np.ndarray:
    ns = parsed.dt.as_unit("ns").to_numpy(dtype="datetime64[ns]").view(np.int64)
    return np.where(parsed.isna().to_numpy(), 0, ns // 1000)


def _unparsed_state(text: str) -> int:
    """2 when Python reads an ISO time pandas cannot hold (out of range), else 1."""
    try:
        dt.datetime.fromisoformat(text.strip())
    except ValueError:
        return 1
    return 2


_PARSERS: dict[str, Callable[[np.ndarray, Field, _Bounds], tuple[Any, Problems]]] = {
    "key": _parse_key,
    "time": _parse_time,
    "target": _parse_target,
    "label": _parse_label,
    "float": _parse_numeric,
    "int": _parse_numeric,
    "category": _parse_category,
}

__all__ = [
    "EPOCH_MS_FROM",
    "ORIGIN",
    "RAW",
    "Field",
    "JsonLines",
    "arrow_schema",
    "coerce",
    "decode_json_lines",
    "decode_json_record",
    "dictionary_columns",
    "fields",
    "frame_from_json_values",
    "frame_from_objects",
    "json_table_frame",
    "json_values_table",
    "quarantine_entry",
    "raw_text",
    "read_json_lines",
    "reason_kind",
    "typed_json_table",
]
