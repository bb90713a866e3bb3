"""Typed, frozen configuration loaded once from ``params.yaml``.

Every stage receives its own section as a value; no core function opens the
file. An invalid file fails here, at load time, with the key, the value and
what was expected.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipelines.common.errors import ParamsError

log = logging.getLogger(__name__)

__all__ = ["ParamsError", "Params", "load_params", "parse_params", "read_params_dict", "apply_overrides"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


ColumnType = Literal["float", "int", "category"]
Task = Literal["binary", "multiclass", "regression"]
# The metrics of each task (their one implementation is pipelines/evaluate/metrics.py), and those where
# lower is better: the gate, early stopping and the drift check's performance trigger orient by them.
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("roc_auc", "pr_auc"),
    "multiclass": ("macro_f1", "log_loss", "accuracy"),
    "regression": ("rmse", "mae", "r2"),
}
LOWER_IS_BETTER = frozenset({"rmse", "mae", "log_loss"})
Metric = Literal["roc_auc", "pr_auc", "macro_f1", "log_loss", "accuracy", "rmse", "mae", "r2"]


class Column(_Frozen):
    """One feature column of the dataset."""

    name: str = Field(min_length=1)
    type: ColumnType
    required: bool = True
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] | None = None
    critical: bool = False

    @model_validator(mode="after")
    def _check_bounds(self) -> Column:
        if self.type == "category":
            if not self.categories:
                raise ValueError(f"category column {self.name!r} needs a non-empty 'categories' list")
            if self.min is not None or self.max is not None:
                raise ValueError(f"category column {self.name!r} takes 'categories', not 'min'/'max'")
        elif self.categories is not None:
            raise ValueError(f"{self.type} column {self.name!r} takes 'min'/'max', not 'categories'")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"column {self.name!r} has min {self.min} > max {self.max}")
        return self

    @property
    def is_numeric(self) -> bool:
        return self.type in ("float", "int")


class Schema(_Frozen):
    """The dataset: feature columns, the binary target, the event key and time."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    key: str = Field(min_length=1)
    event_time: str = Field(min_length=1)
    target: str = Field(min_length=1)
    columns: tuple[Column, ...] = Field(min_length=1)
    task: Task = "binary"  # what the target is: a 0/1 label, one of `classes`, or a number
    classes: tuple[str, ...] | None = None  # multiclass: the labels, in the order of the model's outputs
    target_min: float | None = None  # regression: the target's expected range (validation)
    target_max: float | None = None

    @field_validator("classes", mode="before")
    @classmethod
    def _labels_as_text(cls, value: Any) -> Any:
        """Class labels are text: ``[0, 1, 2]`` in YAML reads as ``("0", "1", "2")``, as ingest reads them."""
        if isinstance(value, list | tuple):
            return tuple(str(v) for v in value)
        return value

    @model_validator(mode="after")
    def _check_task(self) -> Schema:
        if self.task == "multiclass":
            if not self.classes or len(self.classes) < 3:
                raise ValueError(
                    f"task multiclass needs 'classes', a list of at least 3 labels (got {self.classes}); "
                    "two classes are task binary"
                )
            if len(set(self.classes)) != len(self.classes):
                raise ValueError(f"'classes' must be unique labels, got {list(self.classes)}")
        elif self.classes is not None:
            raise ValueError(f"'classes' is for task multiclass, not task {self.task}")
        if self.task != "regression" and (self.target_min is not None or self.target_max is not None):
            raise ValueError(f"'target_min'/'target_max' are for task regression, not task {self.task}")
        if self.target_min is not None and self.target_max is not None and self.target_min > self.target_max:
            raise ValueError(f"target_min {self.target_min} > target_max {self.target_max}")
        return self

    @property
    def output_size(self) -> int:
        """How many logits the network gives a row: the classes of a multiclass task, else 1."""
        return len(self.classes) if self.task == "multiclass" and self.classes else 1

    @model_validator(mode="after")
    def _check_names(self) -> Schema:
        names = [c.name for c in self.columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"column names must be unique, repeated: {dupes}")
        reserved = {self.key, self.event_time, self.target}
        if len(reserved) != 3:
            raise ValueError("key, event_time and target must be three different columns")
        clash = sorted(reserved & set(names))
        if clash:
            raise ValueError(f"key/event_time/target must not also be listed as feature columns: {clash}")
        return self

    @property
    def numeric(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.is_numeric)

    @property
    def categorical(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.type == "category")

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"schema {self.name!r} has no column {name!r}; columns: {list(self.feature_names)}")


class StorageConfig(_Frozen):
    """Where the data tiers live: a local folder or an fsspec URL (no secrets)."""

    root: str | None = None


class FilesSourceConfig(_Frozen):
    path: str = "demo/events"
    formats: tuple[Literal["jsonl", "csv", "parquet"], ...] = ("jsonl", "csv", "parquet")


SourceName = Literal["files", "kafka", "s3"]
_TOPIC = r"^[A-Za-z0-9._-]{1,249}$"


KafkaClientName = Literal["kafka-python", "confluent-kafka"]
KAFKA_CLIENTS: tuple[str, ...] = ("kafka-python", "confluent-kafka")


class KafkaSourceConfig(_Frozen):
    """What the Kafka source reads and how much per run; the brokers come from the environment."""

    client: KafkaClientName = "kafka-python"  # the consumer library (pipelines/ingest/kafka_clients.py)
    topics: tuple[str, ...] = Field(default=("flywheel.events",), min_length=1)
    group_id: str = Field(default="flywheel-ingest", min_length=1)
    max_records: int | None = Field(default=None, ge=1)
    max_seconds: float | None = Field(default=None, gt=0)
    poll_records: int = Field(default=10_000, ge=1)
    chunk_rows: int = Field(default=50_000, ge=1)
    workers: int = Field(default=1, ge=0, le=16)  # decode-and-land child processes (0: inline)
    readers: int = Field(default=1, ge=1, le=16)  # >1: child processes drain the partitions in parallel
    session_timeout_ms: int = Field(default=6000, ge=1000)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    idle_timeout_s: float = Field(default=30.0, gt=0)
    group_instance_id: str | None = None

    @field_validator("client", mode="before")
    @classmethod
    def _known_client(cls, value: Any) -> Any:
        if value not in KAFKA_CLIENTS:
            raise ValueError(f"one of {list(KAFKA_CLIENTS)} (kafka-python is the default)")
        return value

    @model_validator(mode="after")
    def _check_topics(self) -> KafkaSourceConfig:
        import re

        bad = [t for t in self.topics if not re.match(_TOPIC, t) or t in (".", "..")]
        if bad or len(set(self.topics)) != len(self.topics):
            raise ValueError(
                f"topics must be unique Kafka topic names (letters, digits, '._-'), got {list(self.topics)}"
            )
        if self.readers > 1 and (self.max_records is not None or self.max_seconds is not None):
            raise ValueError(
                f"readers: 1 when max_records ({self.max_records}) or max_seconds ({self.max_seconds}) "
                f"bounds a run; readers = {self.readers} drain every partition to its end offset"
            )
        return self


class S3SourceConfig(_Frozen):
    """Where the S3 source lists new objects; endpoint and credentials come from the environment."""

    url: str = Field(default="s3://flywheel/events", pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$")
    formats: tuple[Literal["jsonl", "csv", "parquet"], ...] = ("jsonl", "csv", "parquet")


class IngestConfig(_Frozen):
    sources: tuple[SourceName, ...] = Field(default=("files",), min_length=1)
    files: FilesSourceConfig = FilesSourceConfig()
    kafka: KafkaSourceConfig = KafkaSourceConfig()
    s3: S3SourceConfig = S3SourceConfig()
    max_record_bytes: int = Field(default=65536, gt=0)
    min_event_time: str = "2000-01-01T00:00:00Z"
    max_future_minutes: int = Field(default=60, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _legacy_source(cls, data: Any) -> Any:
        """``source: files`` (one source, the earlier key) still reads as ``sources: [files]``."""
        if isinstance(data, dict) and "source" in data:
            data = dict(data)
            legacy = data.pop("source")
            if "sources" in data and list(data["sources"] or []) != [legacy]:
                raise ValueError(
                    f"give 'sources' only (a list), not both 'source' = {legacy!r} and 'sources'"
                )
            data.setdefault("sources", [legacy])
        return data

    @model_validator(mode="after")
    def _check_sources(self) -> IngestConfig:
        if len(set(self.sources)) != len(self.sources):
            raise ValueError(f"sources must not repeat, got {list(self.sources)}")
        return self


class ValidateConfig(_Frozen):
    min_rows: int = Field(default=50, ge=1)
    mostly: float = Field(default=0.99, gt=0, le=1)
    max_null_fraction: float = Field(default=0.05, ge=0, le=1)
    min_target_rate: float = Field(default=0.0, ge=0, le=1)
    max_target_rate: float = Field(default=0.5, ge=0, le=1)
    extra_expectations: str | None = None

    @model_validator(mode="after")
    def _check_rates(self) -> ValidateConfig:
        if self.min_target_rate > self.max_target_rate:
            raise ValueError(
                f"min_target_rate {self.min_target_rate} > max_target_rate {self.max_target_rate}"
            )
        return self


WindowKind = Literal["sliding", "expanding"]


class SnapshotConfig(_Frozen):
    """The training window: which validated events, up to the logical date, a model learns from.

    ``sliding``: the ``window_days`` whole days ending on ``as_of``. ``expanding``: all validated history
    up to ``as_of``, at most ``max_days`` days back. Either way at most ``max_rows`` rows, newest kept.
    ``expanding`` is the default because it backtests best (docs/backtest.md: 50 years of NOAA weather,
    30-day steps, every retraining policy scores higher with it than with a three-year sliding window).
    """

    window: WindowKind = "expanding"
    window_days: int = Field(default=30, ge=1, le=3650)
    max_days: int | None = Field(default=None, ge=1, le=36500)
    max_rows: int | None = Field(default=None, ge=1)
    as_of: datetime | None = None


class FeaturizeConfig(_Frozen):
    train_fraction: float = Field(default=0.7, gt=0, lt=1)
    valid_fraction: float = Field(default=0.15, gt=0, lt=1)
    min_category_count: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _check_split(self) -> FeaturizeConfig:
        if self.train_fraction + self.valid_fraction >= 1:
            raise ValueError(
                f"train_fraction + valid_fraction must leave a test split, got "
                f"{self.train_fraction} + {self.valid_fraction}"
            )
        return self


class TrainConfig(_Frozen):
    epochs: int = Field(default=20, ge=1, le=1000)
    batch_size: int = Field(default=1024, ge=1)
    learning_rate: float = Field(default=3e-3, gt=0, le=1)
    weight_decay: float = Field(default=1e-5, ge=0)
    hidden: tuple[int, ...] = Field(default=(128, 64), min_length=1)
    dropout: float = Field(default=0.1, ge=0, lt=1)
    max_embedding_dim: int = Field(default=16, ge=1)
    patience: int = Field(default=3, ge=1)
    seed: int = 42
    device: Literal["auto", "cpu", "cuda"] = "auto"
    cpu_threads: int | None = Field(default=None, ge=1, le=1024)  # CPU training threads; None: all cores
    devices: int = Field(default=1, ge=1, le=64)  # > 1: DDP under torchrun, one process per GPU
    gpu_batch_size: int = Field(default=8192, ge=1)  # per process, on CUDA only
    compile: bool = False  # torch.compile the network for training
    model: str | None = None  # "package.module:factory" building the network; None: the built-in TabularNet
    model_params: dict[str, Any] = Field(default_factory=dict)  # passed to the factory as they are
    early_stopping_metric: Metric | None = None  # None: pr_auc (binary), log_loss (multiclass), rmse
    regression_loss: Literal["mse", "huber"] = "mse"
    class_weights: bool = True  # multiclass: cross-entropy weighted by inverse class frequency (capped)

    @field_validator("model")
    @classmethod
    def _check_model(cls, value: str | None) -> str | None:
        if value is not None and not _FACTORY.match(value.strip()):
            raise ValueError(FACTORY_EXPECTED)  # shown as "<key> = <value>: expected <this>"
        return value.strip() if value is not None else None

    @property
    def model_module(self) -> str | None:
        """The module of ``train.model`` (``package.module``), or None for the built-in network."""
        return self.model.partition(":")[0] if self.model else None


_FACTORY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
FACTORY_EXPECTED = "a network factory as package.module:function (a dotted module path, a colon, a name)"


class EvaluateConfig(_Frozen):
    calibration_bins: int = Field(default=10, ge=2, le=100)


_DURATION = re.compile(r"^([1-9][0-9]*)(s|min|h|d|w)$")
_UNIT_SECONDS = {"s": 1, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
DURATION_EXPECTED = "a duration such as 1d, 12h, 30min, 90s or 1w (a whole number and s, min, h, d or w)"


def parse_duration(text: str) -> timedelta:
    """``"1d"`` → one day; ``"12h"``, ``"30min"``, ``"90s"``, ``"1w"`` alike. ValueError naming the text."""
    match = _DURATION.match(str(text).strip())
    if not match:
        raise ValueError(f"duration {text!r}: expected {DURATION_EXPECTED}")
    return timedelta(seconds=int(match[1]) * _UNIT_SECONDS[match[2]])


def _checked_duration(value: str) -> str:
    if not _DURATION.match(str(value).strip()):
        raise ValueError(DURATION_EXPECTED)  # shown as "<key> = <value>: expected <this>"
    return str(value).strip()


class PromoteConfig(_Frozen):
    """The evaluation gate: floors, and the block bootstrap of candidate − champion on the same test rows.

    Test rows close in time are correlated, so the bootstrap resamples whole ``block`` s of event time
    (rows inside a block stay together); with fewer than ``min_blocks`` blocks the gate refuses to decide.
    """

    model_name: str = Field(default="flywheel", min_length=1)
    metric: Metric = "pr_auc"
    min_roc_auc: float = Field(default=0.7, ge=0, le=1)
    min_pr_auc: float = Field(default=0.1, ge=0, le=1)
    min_improvement: float = Field(default=0.0, ge=-1, le=1)
    confidence: float = Field(default=0.9, gt=0.5, lt=1)
    bootstrap_rounds: int = Field(default=500, ge=50, le=20000)
    block: str = "1d"
    min_blocks: int = Field(default=8, ge=2)
    max_latency_ms: float = Field(default=2000, gt=0)
    min_macro_f1: float = Field(default=0.0, ge=0, le=1)  # multiclass floor
    min_r2: float | None = None  # regression floor (None: none)

    @field_validator("block")
    @classmethod
    def _check_block(cls, value: str) -> str:
        return _checked_duration(value)


class MlflowConfig(_Frozen):
    experiment: str = Field(default="flywheel", min_length=1)
    system_metrics: bool = True  # CPU, memory, disk, network (GPU with nvidia-ml-py) on the training run
    system_metrics_interval_s: float = Field(default=2.0, gt=0, le=600)


DistanceMethod = Literal["wasserstein", "jensenshannon", "psi", "hellinger", "kl_div"]


class DriftConfig(_Frozen):
    """Drift monitoring: the current window, the per-column tests and the retrain policy.

    Column tests are Evidently's distance methods; p-value tests are not offered because on large
    windows they flag any shift, however small, and change verdict with the sample size.
    ``alarm: calibrated`` judges each column against its own natural variation: the same distance
    between windows of the reference and the rest of it (a null per column); a column drifts when its
    distance exceeds the ``null_quantile`` of that null (and ``min_distance``). ``alarm: fixed``: when
    it reaches ``column_threshold``. With labels, the champion's ``performance_metric`` on the window
    is compared with its evaluated one (a block-bootstrap interval, blocks of ``promote.block``).
    """

    window_days: int = Field(default=1, ge=1, le=3650)
    experiment: str = Field(default="flywheel-monitoring", min_length=1)
    num_method: DistanceMethod = "wasserstein"
    cat_method: Literal["jensenshannon", "psi", "hellinger", "kl_div"] = "jensenshannon"
    alarm: Literal["calibrated", "fixed"] = "calibrated"
    null_quantile: float = Field(default=0.99, gt=0.5, lt=1)
    null_windows: int = Field(default=100, ge=10, le=1000)
    min_null_windows: int = Field(default=8, ge=2, le=1000)
    min_distance: float = Field(default=0.0, ge=0)
    column_threshold: float = Field(default=0.1, gt=0)
    max_drift_share: float = Field(default=0.5, gt=0, le=1)
    min_rows: int = Field(default=500, ge=1)
    min_roc_auc: float = Field(default=0.7, ge=0, le=1)
    performance_metric: Metric = "roc_auc"
    max_performance_drop: float = Field(default=0.03, ge=0, le=1)
    cooldown_hours: float = Field(default=24, ge=0)
    sample_rows: int | None = Field(default=50_000, ge=1000)
    seed: int = 0


class ScoreConfig(_Frozen):
    """Batch scoring with the champion (``flywheel score``) and its live performance from late labels.

    ``publish_topic``: a Kafka topic each prediction is also sent to (JSON, keyed by the event key; brokers
    as for ingestion); None: predictions stay in the lake. ``min_day_rows``: a day with fewer labelled
    predictions gets no live metric. ``batch_rows``: consecutive validated partitions are scored
    together until one model call holds this many rows (each is still written with its own manifest).
    """

    publish_topic: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,249}$")
    min_day_rows: int = Field(default=100, ge=1)
    batch_rows: int = Field(default=20_000, ge=1)


class ServeConfig(_Frozen):
    """The online endpoint (``flywheel serve``): how it follows the champion and what it accepts.

    The address it listens on is a command-line option (``--host``, ``--port``), and its bearer token
    the environment's ``FLYWHEEL_SERVE_TOKEN``: endpoints and secrets never live in params.
    """

    poll_seconds: float = Field(default=30.0, gt=0, le=3600)
    unknown_category: Literal["reject", "score"] = "reject"
    max_rows: int = Field(default=10_000, ge=1, le=1_000_000)


def _check_minutes(section: str, minutes: dict[str, float]) -> dict[str, float]:
    if "default" not in minutes:
        raise ValueError(f"needs a 'default' entry (minutes for anything not listed), got {sorted(minutes)}")
    bad = {k: v for k, v in minutes.items() if not 0 < v <= 7 * 24 * 60}
    if bad:
        raise ValueError(f"minutes must be > 0 and at most a week (10080), got {bad} in timeouts.{section}")
    return minutes


class TimeoutsConfig(_Frozen):
    """Time limits in minutes: each Airflow task's ``execution_timeout`` by task id (its stage), each
    DAG run's ``dagrun_timeout`` by DAG (``flywheel_<name>``); ``default`` for anything not listed.

    A task past its limit fails naming the stage and the limit, stops its child processes and frees its
    pool slot (the one-slot ``dvc`` pool: a hung ``dvc repro`` no longer blocks every later run).
    """

    tasks: dict[str, float] = Field(default_factory=lambda: {"default": 60.0})
    dagruns: dict[str, float] = Field(default_factory=lambda: {"default": 480.0})

    @field_validator("tasks")
    @classmethod
    def _check_tasks(cls, value: dict[str, float]) -> dict[str, float]:
        return _check_minutes("tasks", value)

    @field_validator("dagruns")
    @classmethod
    def _check_dagruns(cls, value: dict[str, float]) -> dict[str, float]:
        return _check_minutes("dagruns", value)

    def task(self, task_id: str) -> timedelta:
        """The ``execution_timeout`` of a task (its own entry, else ``default``)."""
        return timedelta(minutes=self.tasks.get(task_id, self.tasks["default"]))

    def dagrun(self, dag: str) -> timedelta:
        """The ``dagrun_timeout`` of a DAG (``training`` for ``flywheel_training``; else ``default``)."""
        return timedelta(minutes=self.dagruns.get(dag, self.dagruns["default"]))


class SchedulesConfig(_Frozen):
    """When the DAGs run (cron, UTC). Kept out of the stage sections: a new schedule reruns no stage."""

    ingest: str = Field(default="*/15 * * * *", min_length=1)
    training: str = Field(default="0 2 * * *", min_length=1)
    drift: str = Field(default="0 * * * *", min_length=1)  # fallback when no validated_events arrive


# Where the schedules lived before they had their own section: still read, with a warning.
LEGACY_SCHEDULES = {"ingest": "ingest", "train": "training", "drift": "drift"}


class Params(_Frozen):
    """Everything in ``params.yaml``."""

    schema_: Schema = Field(alias="schema")
    storage: StorageConfig = StorageConfig()
    ingest: IngestConfig = IngestConfig()
    validate_: ValidateConfig = Field(default=ValidateConfig(), alias="validate")
    snapshot: SnapshotConfig = SnapshotConfig()
    featurize: FeaturizeConfig = FeaturizeConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    promote: PromoteConfig = PromoteConfig()
    mlflow: MlflowConfig = MlflowConfig()
    drift: DriftConfig = DriftConfig()
    schedules: SchedulesConfig = SchedulesConfig()
    score: ScoreConfig = ScoreConfig()
    serve: ServeConfig = ServeConfig()
    timeouts: TimeoutsConfig = TimeoutsConfig()

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _move_legacy_schedules(cls, data: Any) -> Any:
        """``<stage>.schedule`` (the old place) becomes ``schedules.<dag>``, unless that is set too."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        schedules = dict(data.get("schedules") or {})
        for section, key in LEGACY_SCHEDULES.items():
            body = data.get(section)
            if isinstance(body, dict) and "schedule" in body:
                body = dict(body)
                value = body.pop("schedule")
                data[section] = body
                log.warning("params: %s.schedule is read as schedules.%s; move it there", section, key)
                schedules.setdefault(key, value)
        if schedules:
            data["schedules"] = schedules
        return data

    @model_validator(mode="after")
    def _check_task_metrics(self) -> Params:
        """The metrics named in train, promote and drift must be metrics of ``schema.task``."""
        task = self.schema_.task
        allowed = TASK_METRICS[task]
        named = {
            "train.early_stopping_metric": self.train.early_stopping_metric,
            "promote.metric": self.promote.metric,
            "drift.performance_metric": self.drift.performance_metric,
        }
        for key, value in named.items():
            if value is not None and value not in allowed:
                raise ValueError(
                    f"{key} = {value!r}: expected a metric of task {task}, one of {list(allowed)}"
                )
        return self

    @property
    def schema(self) -> Schema:  # type: ignore[override]
        return self.schema_

    @property
    def validation(self) -> ValidateConfig:
        return self.validate_


def _format_location(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<top level>"


def _describe(error: ValidationError, source: str) -> str:
    lines = [f"{source} is invalid:"]
    for err in error.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-after")))
        key = _format_location(loc)
        value = err.get("input")
        if err["type"] == "missing":
            lines.append(f"  {key}: missing; expected {err['msg'].lower()}")
        elif err["type"] == "extra_forbidden":
            lines.append(f"  {key} = {value!r}: unknown key; expected one of the documented keys")
        elif not loc:  # a check across sections: its message names the keys and values itself
            lines.append(f"  {err['msg'].removeprefix('Value error, ')}")
        else:
            lines.append(f"  {key} = {value!r}: expected {err['msg'].removeprefix('Value error, ')}")
    return "\n".join(lines)


def parse_params(data: Any, source: str = "params") -> Params:
    """Validate a parsed mapping into :class:`Params` or raise :class:`ParamsError`."""
    if not isinstance(data, dict):
        raise ParamsError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return Params.model_validate(data)
    except ValidationError as exc:
        raise ParamsError(_describe(exc, source)) from None


def read_params_dict(path: str | Path) -> dict[str, Any]:
    """Read the raw mapping from a params file, with clear errors for I/O and YAML problems."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ParamsError(
            f"params file {path} not found; expected a params.yaml with a 'schema' section"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def load_params(path: str | Path = "params.yaml") -> Params:
    """Load and validate ``params.yaml`` once, at the edge."""
    return parse_params(read_params_dict(path), source=str(path))


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of ``data`` with dotted-key ``overrides`` (``train.epochs``) applied.

    An override of a key the params do not have is an error, so a typo in a
    trigger form never passes silently.
    """
    import copy

    out = copy.deepcopy(data)
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = out
        for part in parents:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ParamsError(f"override {dotted}={value!r}: {part!r} is not a section")
            node = child
        node[leaf] = value
    parse_params(out, source=f"params with overrides {overrides}")
    return out
