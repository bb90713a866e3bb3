"""The Kafka consumer clients the Kafka source can use (``ingest.kafka.client``), behind one small interface.

- ``kafka-python`` (the default): pure Python, no native library;
- ``confluent-kafka``: librdkafka, the client of Airflow's Kafka provider; several times faster.

A client only joins the group, polls batches of records (as :class:`Segment`\\ s: topic, partition,
offsets, keys, values), reports offsets, pauses finished partitions, commits explicit offsets and
closes. What a run does with them (bounded drains, decoding, landing, manifests, commit after
landing) is shared and lives in :mod:`pipelines.ingest.kafka`. Both clients are configured the same
way: never auto-commit, never store offsets on their own, start a new group at the earliest offset,
and commit only the offsets they are given.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, NamedTuple, Protocol

from pipelines.common.config import KafkaSourceConfig
from pipelines.ingest.endpoints import KafkaEndpoint, SourceUnavailable
from pipelines.ingest.landing import IngestError

log = logging.getLogger(__name__)

_OFFSET, _KEY, _VALUE = attrgetter("offset"), attrgetter("key"), attrgetter("value")


class TopicPartition(NamedTuple):
    """One partition of a topic (equal to kafka-python's ``TopicPartition`` of the same pair)."""

    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}:{self.partition}"


@dataclass
class Segment:
    """Records of one topic partition as one poll returned them (offsets ascending)."""

    topic: str
    partition: int
    offsets: list[int]
    keys: list[bytes | None]
    values: list[bytes | None]

    def __len__(self) -> int:
        return len(self.offsets)


OnAssigned = Callable[[list[TopicPartition]], dict[TopicPartition, int]]
"""Called with newly assigned partitions; returns the offsets to resume some of them from."""


class KafkaClientError(IngestError):
    """A client call failed; the message says how (the caller names the broker and what it means)."""


class KafkaClient(Protocol):
    """What the Kafka source needs of a consumer client."""

    name: str

    def has_topic(self, topic: str) -> bool:
        """Whether the cluster knows ``topic``."""
        ...

    def partitions(self, topics: Sequence[str]) -> set[TopicPartition]:
        """Every partition of ``topics`` the cluster's metadata lists."""
        ...

    def subscribe(self, topics: Sequence[str], on_assigned: OnAssigned) -> None:
        """Join the consumer group on ``topics``; ``on_assigned`` runs at every (re)assignment."""
        ...

    def assign(self, starts: dict[TopicPartition, int | None]) -> None:
        """Read these partitions outside the group, each from its offset (None: the earliest)."""
        ...

    def poll(self, max_records: int, timeout_s: float) -> list[Segment]:
        """Up to ``max_records`` records, grouped by partition in offset order (empty on timeout)."""
        ...

    def assignment(self) -> set[TopicPartition]:
        """The partitions this consumer owns now."""
        ...

    def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The end offsets (next offset to be written) the broker reports for ``partitions``."""
        ...

    def highwater(self, partition: TopicPartition) -> int | None:
        """The high watermark of the last fetch response for ``partition``; None before the first."""
        ...

    def position(self, partition: TopicPartition) -> int | None:
        """The offset of the next record this consumer returns for ``partition``; None while unknown."""
        ...

    def pause(self, partitions: Iterable[TopicPartition]) -> None:
        """Stop fetching ``partitions`` (a finished partition's records stay for the next run)."""
        ...

    def paused(self) -> set[TopicPartition]:
        """The partitions paused now."""
        ...

    def committed(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]:
        """The group's committed offsets (None: nothing committed yet)."""
        ...

    def commit(self, offsets: dict[TopicPartition, int], metadata: str) -> None:
        """Commit exactly these next offsets, synchronously; :class:`KafkaClientError` if any fails."""
        ...

    def close(self) -> None:
        """Leave the group without committing anything."""
        ...


def open_client(endpoint: KafkaEndpoint, cfg: KafkaSourceConfig) -> KafkaClient:
    """A connected client of kind ``cfg.client``, or :class:`SourceUnavailable` naming the broker.

    Raises:
        SourceUnavailable: the broker cannot be reached.
        IngestError: a topic is missing, or the client's package is not installed.
    """
    kinds: dict[str, Callable[[KafkaEndpoint, KafkaSourceConfig], KafkaClient]] = {
        "kafka-python": KafkaPythonClient,
        "confluent-kafka": ConfluentKafkaClient,
    }
    client = kinds[cfg.client](endpoint, cfg)
    try:
        missing = [t for t in cfg.topics if not client.has_topic(t)]
    except KafkaClientError as exc:
        client.close()
        raise _unreachable(endpoint, exc) from None
    if missing:
        client.close()
        raise IngestError(
            f"Kafka topic(s) {missing} not found on {endpoint.describe()}; expected existing "
            "topics (create them, or produce to them with `flywheel produce --to kafka`)"
        )
    return client


def _unreachable(endpoint: KafkaEndpoint, exc: BaseException) -> SourceUnavailable:
    return SourceUnavailable(
        f"{endpoint.describe()} is not reachable ({exc}); expected a running broker: start one with "
        "`flywheel services up kafka`, or point the flywheel_kafka Connection or FLYWHEEL_KAFKA_BOOTSTRAP "
        "at yours"
    )


# -- kafka-python ---------------------------------------------------------------------------------


def kafka_python_config(endpoint: KafkaEndpoint, cfg: KafkaSourceConfig) -> dict[str, Any]:
    """kafka-python settings of the ingestion consumer (the benchmark's bare loop uses the same)."""
    return {
        **endpoint.client_config(),
        "group_id": cfg.group_id,
        "group_instance_id": cfg.group_instance_id,
        "client_id": endpoint.options.get("client_id", "flywheel-ingest"),
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": cfg.session_timeout_ms,
        "heartbeat_interval_ms": max(100, cfg.session_timeout_ms // 3),
        "max_poll_records": cfg.poll_records,
        "fetch_max_wait_ms": 100,  # an empty fetch (a partition at its end) answers fast
        "max_partition_fetch_bytes": 4 * 1024 * 1024,
        "bootstrap_timeout_ms": int(cfg.connect_timeout_s * 1000),
        "request_timeout_ms": max(30_000, cfg.session_timeout_ms + 5000),
    }


class KafkaPythonClient:
    """The kafka-python ``KafkaConsumer`` behind :class:`KafkaClient`."""

    name = "kafka-python"

    def __init__(self, endpoint: KafkaEndpoint, cfg: KafkaSourceConfig) -> None:
        from kafka import KafkaConsumer
        from kafka.errors import KafkaError

        try:
            self.consumer = KafkaConsumer(**kafka_python_config(endpoint, cfg))
        except KafkaError as exc:
            raise _unreachable(endpoint, KafkaClientError(f"{type(exc).__name__}: {exc}")) from None

    def has_topic(self, topic: str) -> bool:
        return self.consumer.partitions_for_topic(topic) is not None

    def partitions(self, topics: Sequence[str]) -> set[TopicPartition]:
        listed = {topic: self.consumer.partitions_for_topic(topic) or set() for topic in topics}
        return {TopicPartition(topic, p) for topic, numbers in listed.items() for p in numbers}

    def subscribe(self, topics: Sequence[str], on_assigned: OnAssigned) -> None:
        from kafka import ConsumerRebalanceListener
        from kafka import TopicPartition as KafkaTopicPartition

        consumer = self.consumer

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # kafka-python is untyped
            def on_partitions_revoked(self, revoked: Any) -> None:
                pass

            def on_partitions_assigned(self, assigned: Any) -> None:
                # kafka-python resets a re-assigned partition to its committed offset: seek where told
                resume = on_assigned([TopicPartition(tp.topic, tp.partition) for tp in assigned])
                for tp, offset in resume.items():
                    consumer.seek(KafkaTopicPartition(*tp), offset)

        consumer.subscribe(topics=list(topics), listener=Listener())

    def assign(self, starts: dict[TopicPartition, int | None]) -> None:
        chosen = {tp: self._tp(tp) for tp in starts}
        self.consumer.assign(list(chosen.values()))
        earliest = [chosen[tp] for tp, offset in starts.items() if offset is None]
        if earliest:
            self.consumer.seek_to_beginning(*earliest)
        for tp, offset in starts.items():
            if offset is not None:
                self.consumer.seek(chosen[tp], offset)

    def poll(self, max_records: int, timeout_s: float) -> list[Segment]:
        batch = self.consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        return [
            Segment(
                tp.topic,
                tp.partition,
                list(map(_OFFSET, recs)),
                list(map(_KEY, recs)),
                list(map(_VALUE, recs)),
            )
            for tp, recs in batch.items()
            if recs
        ]

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(tp.topic, tp.partition) for tp in self.consumer.assignment()}

    def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        ends = self.consumer.end_offsets([self._tp(tp) for tp in partitions])
        return {TopicPartition(tp.topic, tp.partition): offset for tp, offset in ends.items()}

    def highwater(self, partition: TopicPartition) -> int | None:
        highwater: int | None = self.consumer.highwater(self._tp(partition))
        return highwater

    def position(self, partition: TopicPartition) -> int | None:
        position: int | None = self.consumer.position(self._tp(partition))
        return position

    def pause(self, partitions: Iterable[TopicPartition]) -> None:
        self.consumer.pause(*(self._tp(tp) for tp in partitions))

    def paused(self) -> set[TopicPartition]:
        return {TopicPartition(tp.topic, tp.partition) for tp in self.consumer.paused()}

    def committed(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]:
        from kafka.errors import KafkaError

        try:
            return {tp: self.consumer.committed(self._tp(tp)) for tp in partitions}
        except KafkaError as exc:
            raise KafkaClientError(f"{type(exc).__name__}: {exc}") from None

    def commit(self, offsets: dict[TopicPartition, int], metadata: str) -> None:
        from kafka.errors import KafkaError
        from kafka.structs import OffsetAndMetadata

        try:
            self.consumer.commit(
                {self._tp(tp): OffsetAndMetadata(offset, metadata, -1) for tp, offset in offsets.items()}
            )
        except KafkaError as exc:
            raise KafkaClientError(f"{type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        self.consumer.close(autocommit=False, timeout_ms=5000)

    @staticmethod
    def _tp(tp: TopicPartition) -> Any:
        from kafka import TopicPartition as KafkaTopicPartition

        return KafkaTopicPartition(tp.topic, tp.partition)


# -- confluent-kafka (librdkafka) -------------------------------------------------------------------


def librdkafka_config(endpoint: KafkaEndpoint, cfg: KafkaSourceConfig) -> dict[str, Any]:
    """librdkafka settings of the ingestion consumer, matching :func:`kafka_python_config`.

    Offsets are only ever committed explicitly (``enable.auto.commit`` and ``enable.auto.offset.store``
    off); ``enable.partition.eof`` tells the drain when a partition reached its end.
    """
    config: dict[str, Any] = {
        **endpoint.librdkafka_config(),
        "group.id": cfg.group_id,
        "client.id": endpoint.options.get("client_id", "flywheel-ingest"),
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
        "session.timeout.ms": cfg.session_timeout_ms,
        "heartbeat.interval.ms": max(100, cfg.session_timeout_ms // 3),
        "fetch.wait.max.ms": 100,
        "max.partition.fetch.bytes": 4 * 1024 * 1024,
        # once queued.min.messages are prefetched, librdkafka waits this long before fetching again
        # (default 1 s): a backlog drained faster than that would stall a second at a time
        "fetch.queue.backoff.ms": 10,
        "socket.connection.setup.timeout.ms": max(1000, int(cfg.connect_timeout_s * 1000)),
        "socket.timeout.ms": max(30_000, cfg.session_timeout_ms + 5000),
    }
    if cfg.group_instance_id:
        config["group.instance.id"] = cfg.group_instance_id
    return config


class ConfluentKafkaClient:
    """The confluent-kafka ``Consumer`` (librdkafka) behind :class:`KafkaClient`.

    librdkafka's position is only known once a record or an end-of-partition event came, so the
    client tracks it from those; its log lines go to the ``pipelines.ingest.librdkafka`` logger. Where
    kafka-python keeps its partitions while the broker is away (and the drain's idle timeout fails the
    run), librdkafka ends the group session and drops them as lost: that fails the run at once.
    """

    name = "confluent-kafka"

    def __init__(self, endpoint: KafkaEndpoint, cfg: KafkaSourceConfig) -> None:
        try:
            import confluent_kafka
        except ImportError:  # pragma: no cover - a dependency of Flywheel; only a broken install lacks it
            raise IngestError(
                "ingest.kafka.client = 'confluent-kafka' needs the confluent-kafka package; expected it "
                "installed with Flywheel (pip install -c constraints.txt -e .)"
            ) from None
        self.ck = confluent_kafka
        self.endpoint, self.cfg = endpoint, cfg
        config = {
            **librdkafka_config(endpoint, cfg),
            "logger": logging.getLogger("pipelines.ingest.librdkafka"),
        }
        try:
            self.consumer = confluent_kafka.Consumer(config)
        except confluent_kafka.KafkaException as exc:
            raise IngestError(
                f"{endpoint.describe()}: the librdkafka configuration was refused: {exc}"
            ) from None
        self._positions: dict[TopicPartition, int] = {}
        self._paused: set[TopicPartition] = set()
        self._topics: set[str] | None = None
        self._lost: list[str] = []  # partitions taken away without a rebalance: the group session ended

    def _metadata(self) -> Any:
        """The cluster's metadata (topics and their partitions), fetched now."""
        try:
            return self.consumer.list_topics(timeout=self.cfg.connect_timeout_s)
        except self.ck.KafkaException as exc:
            raise KafkaClientError(str(exc.args[0] if exc.args else exc)) from None

    def has_topic(self, topic: str) -> bool:
        if self._topics is None:
            metadata = self._metadata()
            self._topics = {name for name, t in metadata.topics.items() if t.error is None}
        return topic in self._topics

    def partitions(self, topics: Sequence[str]) -> set[TopicPartition]:
        metadata = self._metadata()
        return {
            TopicPartition(topic, p)
            for topic in topics
            if topic in metadata.topics
            for p in metadata.topics[topic].partitions
        }

    def subscribe(self, topics: Sequence[str], on_assigned: OnAssigned) -> None:
        def assigned(consumer: Any, partitions: list[Any]) -> None:
            own = [TopicPartition(p.topic, p.partition) for p in partitions]
            resume = on_assigned(own)
            self._paused -= set(own)
            for tp in own:
                self._positions.pop(tp, None)
            for p in partitions:
                offset = resume.get(TopicPartition(p.topic, p.partition))
                if offset is not None:
                    p.offset = offset
                    self._positions[TopicPartition(p.topic, p.partition)] = offset
            consumer.assign(partitions)

        def lost(consumer: Any, partitions: list[Any]) -> None:
            self._lost = sorted(str(TopicPartition(p.topic, p.partition)) for p in partitions)

        self.consumer.subscribe(list(topics), on_assign=assigned, on_lost=lost)

    def assign(self, starts: dict[TopicPartition, int | None]) -> None:
        beginning = self.ck.OFFSET_BEGINNING
        self.consumer.assign(
            [
                self.ck.TopicPartition(tp.topic, tp.partition, beginning if offset is None else offset)
                for tp, offset in starts.items()
            ]
        )
        for tp, offset in starts.items():
            if offset is not None:
                self._positions[tp] = offset

    def poll(self, max_records: int, timeout_s: float) -> list[Segment]:
        segments: dict[tuple[str, int], Segment] = {}
        messages: list[Any] = self.consumer.consume(num_messages=max_records, timeout=timeout_s)
        if self._lost:
            raise SourceUnavailable(
                f"{self.endpoint.describe()}: the consumer group session ended and partitions "
                f"{self._lost} were lost (the broker is down or unreachable); nothing of this run was "
                "committed"
            )
        for message in messages:
            error = message.error()
            if error is not None:
                self._event(message, error)
                continue
            where = (message.topic(), message.partition())
            segment = segments.get(where)
            if segment is None:
                segment = segments[where] = Segment(where[0], where[1], [], [], [])
            segment.offsets.append(message.offset())
            segment.keys.append(message.key())
            segment.values.append(message.value())
        for s in segments.values():
            self._positions[TopicPartition(s.topic, s.partition)] = s.offsets[-1] + 1
        return list(segments.values())

    def _event(self, message: Any, error: Any) -> None:
        """An end-of-partition event moves the position; a fatal or unknown error stops the run."""
        if error.code() == self.ck.KafkaError._PARTITION_EOF:
            self._positions[TopicPartition(message.topic(), message.partition())] = message.offset()
        elif error.fatal() or not error.retriable():
            raise SourceUnavailable(
                f"{self.endpoint.describe()}: consuming {message.topic()}:{message.partition()} failed "
                f"({error.name()}: {error.str()}); nothing of this run was committed"
            )
        else:
            log.warning("%s: %s (retrying)", self.endpoint.describe(), error.str())

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(p.topic, p.partition) for p in self.consumer.assignment()}

    def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        ends = {}
        for tp in partitions:
            try:
                watermarks = self.consumer.get_watermark_offsets(
                    self.ck.TopicPartition(tp.topic, tp.partition), timeout=self.cfg.connect_timeout_s
                )
            except self.ck.KafkaException as exc:
                raise SourceUnavailable(
                    f"{self.endpoint.describe()}: the end offset of {tp} is not known ({exc})"
                ) from None
            if watermarks is None:
                raise SourceUnavailable(
                    f"{self.endpoint.describe()}: the end offset of {tp} was not known within "
                    f"{self.cfg.connect_timeout_s:g} s"
                )
            ends[tp] = watermarks[1]
        return ends

    def highwater(self, partition: TopicPartition) -> int | None:
        _, high = self.consumer.get_watermark_offsets(
            self.ck.TopicPartition(partition.topic, partition.partition), cached=True
        )
        return high if high >= 0 else None

    def position(self, partition: TopicPartition) -> int | None:
        return self._positions.get(partition)

    def pause(self, partitions: Iterable[TopicPartition]) -> None:
        chosen = list(partitions)
        self.consumer.pause([self.ck.TopicPartition(tp.topic, tp.partition) for tp in chosen])
        self._paused |= set(chosen)

    def paused(self) -> set[TopicPartition]:
        return self._paused & self.assignment()

    def committed(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]:
        chosen = [self.ck.TopicPartition(tp.topic, tp.partition) for tp in partitions]
        if not chosen:
            return {}
        try:
            found = self.consumer.committed(chosen, timeout=self.cfg.connect_timeout_s)
        except self.ck.KafkaException as exc:
            raise KafkaClientError(str(exc.args[0] if exc.args else exc)) from None
        return {TopicPartition(p.topic, p.partition): (p.offset if p.offset >= 0 else None) for p in found}

    def commit(self, offsets: dict[TopicPartition, int], metadata: str) -> None:
        chosen = [
            self.ck.TopicPartition(tp.topic, tp.partition, offset, metadata=metadata)
            for tp, offset in offsets.items()
        ]
        try:
            done = self.consumer.commit(offsets=chosen, asynchronous=False)
        except self.ck.KafkaException as exc:
            raise KafkaClientError(str(exc.args[0] if exc.args else exc)) from None
        failed = [f"{p.topic}:{p.partition}: {p.error}" for p in done or [] if p.error is not None]
        if failed:
            raise KafkaClientError(f"commit refused for {failed}")

    def close(self) -> None:
        self.consumer.close()
