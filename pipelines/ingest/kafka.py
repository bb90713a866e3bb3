"""The Kafka source: drain a bounded backlog of a consumer group into one landing partition, then commit.

One run, in this order, so that a crash anywhere loses nothing:

1. join the consumer group (``ingest.kafka.group_id``) on ``ingest.kafka.topics`` and note the end
   offsets of the assigned partitions (raised to the high watermark of the first fetch response: some
   brokers report lagging end offsets): the run drains up to them, or stops at ``max_records`` /
   ``max_seconds``;
2. poll in batches; every ``chunk_rows`` records become one chunk, decoded and typed by the files
   source's row rules ``DECODE_ROWS`` records at a time as they arrive (the working memory is a
   batch's, and only the last batch is left to decode when the drain ends), and written whole as
   ``part-NNNNN.parquet`` (and ``part-NNNNN.jsonl`` in quarantine). With ``workers: N`` child
   processes do this while the consumer keeps fetching, chunk ``k`` in child ``k % N``;
3. write the quarantine manifest, then the landing manifest (offset ranges and counts per topic
   partition), durably, last;
4. commit the offsets, and only now.

A crash before 3 leaves no manifest: readers never see the partition, the offsets stay where they
were and a retry (same run id) resets and rewrites it. A crash between 3 and 4 leaves a complete
partition whose records the next run consumes again: the validation step drops event keys already
validated, so validated data still holds each event once. A retry of a run whose partition is
complete only finishes the commit. ``consumed == landed + quarantined`` in every manifest.

The consumer library is ``ingest.kafka.client`` (kafka-python or confluent-kafka): only
:mod:`pipelines.ingest.kafka_clients` knows it; everything here is the same for both.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import mmap
import os
import pickle
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from typing import Any, cast

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.common.config import IngestConfig, KafkaSourceConfig, Params, Schema
from pipelines.common.io import table_bytes
from pipelines.common.lake import MANIFEST, Lake
from pipelines.common.progress import Progress
from pipelines.common.settings import Settings
from pipelines.ingest import rows as records
from pipelines.ingest.endpoints import KafkaEndpoint, SourceUnavailable
from pipelines.ingest.kafka_clients import KafkaClient, KafkaClientError, Segment, TopicPartition, open_client
from pipelines.ingest.landing import IngestError, check_counts, jsonl_bytes, part_name, write_manifest
from pipelines.ingest.messages import decode_batch, landing_schema

log = logging.getLogger(__name__)

SOURCE = "kafka"
MAX_IN_FLIGHT = 3  # batches handed to a worker and not yet decoded: bounds the consumer's memory
DECODE_ROWS = 10_000  # records handed to the decoder at a time (a chunk is landed whole, in one part)
_POLL_S = 0.5


# -- landing one chunk (in the worker process, or inline) ---------------------------------------


@dataclass(frozen=True)
class ChunkTarget:
    """Everything a worker needs to land chunks of one run (sent once, when the worker starts)."""

    lake_root: str
    landing: str
    quarantine: str
    schema: Schema
    cfg: IngestConfig
    now: pd.Timestamp


@dataclass
class ChunkSummary:
    """What one landed chunk holds."""

    index: int
    consumed: int
    landed: int
    quarantined: int
    reasons: dict[str, int]
    part: str | None
    quarantine_part: str | None
    by_partition: dict[str, list[int]]  # "topic:partition" -> [consumed, quarantined]
    min_event_time: str | None = None
    max_event_time: str | None = None


@dataclass
class _Piece:
    """One batch of a chunk, decoded: its typed rows as Arrow, its quarantine entries and counts."""

    table: pa.Table
    quarantined: list[dict[str, Any]]
    consumed: int
    by_partition: dict[str, list[int]]
    times: list[pd.Timestamp]


class ChunkBuilder:
    """Decodes a chunk batch by batch as the records come, and lands it whole when told.

    Decoding a batch at a time bounds the working memory by the batch, not the chunk, and leaves
    only the last batch to decode when the drain ends; the parts are still one per chunk.
    """

    def __init__(self, target: ChunkTarget) -> None:
        self.target = target
        self.arrow_schema = landing_schema(target.schema, target.cfg, target.now)
        self.dictionary = records.dictionary_columns(target.schema)
        self.pieces: list[_Piece] = []

    def add(self, segments: list[Segment]) -> None:
        """Decode and type one batch of records; keep the rows as Arrow until the chunk lands.

        A batch whose every message passes the row rules is typed in Arrow alone; any other goes
        through the per-record rules, which quarantine what fails with its reason.
        """
        schema = self.target.schema
        table, quarantined = decode_batch(
            segments, schema, self.target.cfg, self.target.now, self.arrow_schema
        )
        times = pc.min_max(table.column(schema.event_time))
        self.pieces.append(
            _Piece(
                table=table,
                quarantined=quarantined,
                consumed=sum(len(s) for s in segments),
                by_partition=_by_partition(segments, quarantined),
                times=[pd.Timestamp(times["min"].as_py()), pd.Timestamp(times["max"].as_py())]
                if table.num_rows
                else [],
            )
        )

    def land(self, index: int) -> ChunkSummary:
        """Write the batches added since the last chunk as part ``index`` and its quarantine part."""
        pieces, self.pieces = self.pieces, []
        lake = Lake(self.target.lake_root)
        table = pa.concat_tables([p.table for p in pieces]) if pieces else self.arrow_schema.empty_table()
        quarantined = [entry for p in pieces for entry in p.quarantined]
        part = quarantine_part = None
        if table.num_rows:
            part = part_name(index, ".parquet")
            lake.write_bytes(f"{self.target.landing}/{part}", table_bytes(table, self.dictionary))
        if quarantined:
            quarantine_part = part_name(index, ".jsonl")
            lake.write_bytes(f"{self.target.quarantine}/{quarantine_part}", jsonl_bytes(quarantined))
        consumed = sum(p.consumed for p in pieces)
        check_counts(consumed, table.num_rows, len(quarantined))
        times = [t for p in pieces for t in p.times]
        return ChunkSummary(
            index=index,
            consumed=consumed,
            landed=table.num_rows,
            quarantined=len(quarantined),
            reasons=dict(Counter(records.reason_kind(e["reason"]) for e in quarantined)),
            part=part,
            quarantine_part=quarantine_part,
            by_partition=_sum_counts(p.by_partition for p in pieces),
            min_event_time=min(times).isoformat() if times else None,
            max_event_time=max(times).isoformat() if times else None,
        )


def land_chunk(target: ChunkTarget, index: int, segments: list[Segment]) -> ChunkSummary:
    """Decode a chunk and write its landed part and quarantine part (each whole, durably)."""
    builder = ChunkBuilder(target)
    builder.add(segments)
    return builder.land(index)


def _by_partition(segments: list[Segment], quarantined: list[dict[str, Any]]) -> dict[str, list[int]]:
    counts: dict[str, list[int]] = {}
    for s in segments:
        counts.setdefault(f"{s.topic}:{s.partition}", [0, 0])[0] += len(s)
    for entry in quarantined:
        counts[f"{entry['topic']}:{entry['partition']}"][1] += 1
    return counts


def _sum_counts(counts: Iterable[dict[str, list[int]]]) -> dict[str, list[int]]:
    total: dict[str, list[int]] = {}
    for by_partition in counts:
        for name, (n, q) in by_partition.items():
            sums = total.setdefault(name, [0, 0])
            sums[0] += n
            sums[1] += q
    return total


def _die_with(parent: int) -> None:
    """In a child: ignore Ctrl-C (the parent handles it) and die with the parent, even on ``kill -9``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError, AttributeError):  # Linux: the kernel kills us when the parent dies
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()


def _exit_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _ready() -> int:
    return os.getpid()


SLOT_BYTES = 16 << 20  # one batch's place in a child's shared ring; a larger batch goes through the pipe


class _Child:
    """One decode-and-land child, forked now, fed without a thread in the consumer's process.

    A batch is pickled into a slot of a ring of shared memory (mapped before the fork, so both
    processes see it), and only its place goes through a pipe; the child answers each request in
    order on a second pipe. A process pool would pickle and write batches from a feeder thread and
    collect results in a manager thread, and both contend for the interpreter lock with the consumer
    and kafka-python's I/O thread: with them, the consumer drained 1M messages about 5% slower
    (docs/benchmarks.md).
    """

    def __init__(self, target: ChunkTarget) -> None:
        ctx = get_context("fork")
        self.ring = mmap.mmap(-1, SLOT_BYTES * (MAX_IN_FLIGHT + 1))
        requests, self._requests = ctx.Pipe(duplex=False)
        self._answers, answers = ctx.Pipe(duplex=False)
        self.process = ctx.Process(
            target=_child_main, args=(target, os.getpid(), self.ring, requests, answers), daemon=True
        )
        self.process.start()
        requests.close()
        answers.close()
        self._free = list(range(MAX_IN_FLIGHT + 1))
        # the slot of each request not yet answered, the child's start-up first
        self._slots: deque[int | None] = deque([None])
        self.result()  # the child's start-up: its error, if it failed

    def add(self, segments: list[Segment]) -> None:
        """Hand a batch over to be decoded (answered with None)."""
        data = pickle.dumps(segments, protocol=pickle.HIGHEST_PROTOCOL)
        if len(data) > SLOT_BYTES or not self._free:
            self._ask(("batch", data, None))
            return
        slot = self._free.pop()
        self.ring[slot * SLOT_BYTES : slot * SLOT_BYTES + len(data)] = data
        self._ask(("slot", slot, len(data)), slot)

    def land(self, index: int) -> None:
        """Land the batches added since the last chunk as part ``index`` (answered with its summary)."""
        self._ask(("land", index, None))

    def _ask(self, request: tuple[str, Any, Any], slot: int | None = None) -> None:
        try:
            self._requests.send(request)
        except OSError:  # the child is gone: its end of the pipe closed
            raise self._died() from None
        self._slots.append(slot)

    def _died(self) -> IngestError:
        self.process.join(timeout=1)
        return IngestError(
            f"the decode-and-land child (pid {self.process.pid}) died "
            f"(exit status {self.process.exitcode}); nothing of this run was committed"
        )

    @property
    def pending(self) -> int:
        return len(self._slots)

    def result(self) -> ChunkSummary | None:
        """The answer to the oldest request; the child's exception is raised here."""
        try:
            ok, value = self._answers.recv()
        except (EOFError, OSError):
            raise self._died() from None
        slot = self._slots.popleft()
        if slot is not None:
            self._free.append(slot)
        if not ok:
            raise value
        return cast("ChunkSummary | None", value)

    def close(self) -> None:
        """Stop the child: at once when requests are unanswered (the run failed), else once it is done."""
        if self._slots:
            self.process.kill()
        else:
            with contextlib.suppress(OSError):
                self._requests.send(("stop", None, None))
        self.process.join()
        self._requests.close()
        self._answers.close()
        self.ring.close()


def _child_main(target: ChunkTarget, parent: int, ring: mmap.mmap, requests: Any, answers: Any) -> None:
    """The child's loop: answer each request in order, with its result or its exception."""
    _die_with(parent)
    try:
        builder = ChunkBuilder(target)
        _answer(answers, True, None)
    except Exception as exc:
        _answer(answers, False, exc)
        return
    while True:
        kind, where, size = requests.recv()
        if kind == "stop":
            return
        try:
            if kind == "land":
                _answer(answers, True, builder.land(where))
                continue
            data = where if kind == "batch" else ring[where * SLOT_BYTES : where * SLOT_BYTES + size]
            builder.add(pickle.loads(data))
            _answer(answers, True, None)
        except Exception as exc:
            _answer(answers, False, exc)


def _answer(answers: Any, ok: bool, value: Any) -> None:
    try:
        answers.send((ok, value))
    except (pickle.PicklingError, TypeError, AttributeError):  # an exception that does not pickle
        answers.send((False, IngestError(f"{type(value).__name__}: {value}")))


class Lander:
    """Decodes batches and lands chunks, inline or in ``workers`` child processes, a few batches in flight.

    Chunk ``k`` is decoded and landed by child ``k % workers``, so the children decode different
    chunks at the same time; the summaries come back in chunk order. Create it *before* the Kafka
    consumer: the children are forked while the process has no client threads.
    """

    def __init__(self, target: ChunkTarget, workers: int, first: int = 0, stride: int = 1) -> None:
        self.target = target
        self.workers = workers
        self.summaries: list[ChunkSummary] = []
        self._children: list[_Child] = []
        self._builder = ChunkBuilder(target)
        self._chunk = 0  # chunks landed so far; chunk c is part first + c * stride (readers share a run)
        self._first, self._stride = first, stride

    def __enter__(self) -> Lander:
        try:
            for _ in range(self.workers):  # forked now, before any client thread exists
                self._children.append(_Child(self.target))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for child in self._children:
            child.close()

    def add(self, segments: list[Segment]) -> None:
        """Decode one batch of the current chunk (returns at once while few batches are in flight)."""
        if not self._children:
            self._builder.add(segments)
            return
        child = self._children[self._chunk % len(self._children)]
        self._wait(child, MAX_IN_FLIGHT)
        child.add(segments)

    def land(self) -> None:
        """The batches added since the last chunk become the next chunk's parts."""
        chunk, self._chunk = self._chunk, self._chunk + 1
        index = self._first + chunk * self._stride
        if not self._children:
            self.summaries.append(self._builder.land(index))
            return
        child = self._children[chunk % len(self._children)]
        self._wait(child, MAX_IN_FLIGHT)
        child.land(index)

    def submit(self, segments: list[Segment]) -> None:
        """Land ``segments`` as one chunk."""
        self.add(segments)
        self.land()

    def finish(self) -> list[ChunkSummary]:
        """Wait for every chunk; the summaries in chunk order."""
        for child in self._children:
            self._wait(child, 1)
        self.summaries.sort(key=lambda s: s.index)
        return self.summaries

    def _wait(self, child: _Child, below: int) -> None:
        while child.pending >= below:
            summary = child.result()
            if summary is not None:
                self.summaries.append(summary)


# -- readers in parallel: each drains some partitions outside the group and lands its own chunks --


Ranges = dict[TopicPartition, tuple[int | None, int]]  # partition -> (first offset or None: earliest, end)


@dataclass(frozen=True)
class _ReaderJob:
    """Everything a reader needs (sent once, when the readers start)."""

    target: ChunkTarget
    cfg: KafkaSourceConfig
    endpoint: KafkaEndpoint


_READER: _ReaderJob | None = None


def _reader_init(job: _ReaderJob, parent: int) -> None:
    global _READER
    _READER = job
    _die_with(parent)


def _read_partitions(reader: int, readers: int, ranges: Ranges) -> tuple[Drained, list[ChunkSummary]]:
    """In a reader: drain ``{partition: (start, end)}`` (start None: the earliest) and land the chunks as
    parts ``reader``, ``reader + readers``, ... so that the readers' parts never collide."""
    assert _READER is not None, "reader not initialised"
    job = _READER
    with _closing(open_client(job.endpoint, job.cfg)) as client:
        client.assign({tp: start for tp, (start, _) in ranges.items()})
        lander = Lander(job.target, 0, first=reader, stride=readers)
        drain = _Drain(client, job.cfg, job.endpoint, lander)
        drain.drained.end.update({tp: end for tp, (_, end) in ranges.items()})
        drained = drain.run()
        return drained, lander.finish()


class Readers:
    """``readers`` child processes that drain the run's partitions in parallel, each landing its chunks.

    The run's own consumer stays the group member: it holds the partitions (paused, polled only to stay
    in the group), writes the manifest and commits. The readers read outside the group, from the
    committed offsets up to the end offsets seen at the start. Create it *before* the Kafka consumer:
    the readers are forked while the process has no client threads.
    """

    def __init__(self, job: _ReaderJob, readers: int) -> None:
        self.job, self.readers = job, readers
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> Readers:
        self._pool = ProcessPoolExecutor(
            self.readers,
            mp_context=get_context("fork"),
            initializer=_reader_init,
            initargs=(self.job, os.getpid()),
        )
        self._pool.submit(_ready).result()  # fork them all now, before any client thread exists
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def drain(self, client: KafkaClient) -> tuple[Drained, list[ChunkSummary]]:
        """Split the assigned partitions among the readers by backlog, wait for them, merge what they read."""
        assert self._pool is not None, "use Readers as a context manager"
        partitions = sorted(client.assignment())
        committed = client.committed(partitions)
        ends = client.end_offsets(partitions)
        client.pause(partitions)
        ranges = {
            tp: (committed.get(tp), ends[tp]) for tp in partitions if ends[tp] > (committed.get(tp) or 0)
        }
        groups = _split(ranges, self.readers)
        futures = [
            self._pool.submit(_read_partitions, i, len(groups), group) for i, group in enumerate(groups)
        ]
        while not all(f.done() for f in futures):
            wait(futures, timeout=_POLL_S, return_when=FIRST_EXCEPTION)
            if any(f.done() and f.exception() is not None for f in futures):
                break
            client.poll(1, 0.1)  # keeps this consumer in the group (and lets it finish a rebalance)
            unpaused = client.assignment() - client.paused()
            if unpaused:  # a rebalance assigned them again: the readers read them, not this consumer
                client.pause(unpaused)
        merged, chunks = Drained(), []
        for future in futures:
            drained, summaries = future.result()
            merged.first.update(drained.first)
            merged.last.update(drained.last)
            merged.end.update(drained.end)
            merged.consumed += drained.consumed
            chunks += summaries
        return merged, sorted(chunks, key=lambda c: c.index)


def _split(ranges: Ranges, readers: int) -> list[Ranges]:
    """The partitions in at most ``readers`` groups of about equal backlog (largest first, to the lightest
    group)."""
    groups: list[Ranges] = [{} for _ in range(min(readers, len(ranges)))]
    loads = [0] * len(groups)
    backlog = sorted(ranges, key=lambda tp: ranges[tp][1] - (ranges[tp][0] or 0), reverse=True)
    for tp in backlog:
        lightest = loads.index(min(loads))
        groups[lightest][tp] = ranges[tp]
        loads[lightest] += ranges[tp][1] - (ranges[tp][0] or 0)
    return groups


# -- the consumer -------------------------------------------------------------------------------


@dataclass
class Drained:
    """How far a run read: per topic partition the first/last offsets landed, and why it stopped."""

    first: dict[TopicPartition, int] = field(default_factory=dict)
    last: dict[TopicPartition, int] = field(default_factory=dict)
    end: dict[TopicPartition, int] = field(default_factory=dict)
    confirmed: dict[TopicPartition, int] = field(default_factory=dict)  # high watermark of the first fetch
    consumed: int = 0
    stopped_by: str = "end_offsets"


class _Drain:
    """One run's polling: join the group, then poll batches into chunks until the run's bound."""

    def __init__(
        self, client: KafkaClient, cfg: KafkaSourceConfig, endpoint: KafkaEndpoint, lander: Lander | None
    ):
        self.client, self.cfg, self.endpoint, self.lander = client, cfg, endpoint, lander
        self.drained = Drained()
        self.reassigned = False  # a rebalance happened since the end offsets were last looked up
        self.batch: list[Segment] = []  # polled, not yet handed to the decoder
        self.batch_rows = 0
        self.rows = 0  # in the current chunk

    def _on_assigned(self, assigned: list[TopicPartition]) -> dict[TopicPartition, int]:
        """After a rebalance, every partition this run already read resumes where it stopped (a client
        would restart it at its committed offset and read again what this run has landed). Partitions
        lost to another consumer are simply no longer drained by this run."""
        self.reassigned = True
        return {tp: self.drained.last[tp] + 1 for tp in assigned if tp in self.drained.last}

    def join(self) -> None:
        """Subscribe and poll until every partition of the topics is assigned (records those polls return
        are kept).

        A run is alone in its group, but a run killed before it left stays a member until its session
        times out, and a broker may hand it partitions meanwhile (Tansu does): those partitions are
        waited for. Taking them as drained would end the run with its backlog left behind.
        """
        self.client.subscribe(self.cfg.topics, self._on_assigned)
        timeout = max(30.0, 3 * self.cfg.session_timeout_ms / 1000)
        deadline = time.monotonic() + timeout
        wanted = self.client.partitions(self.cfg.topics)
        while not (held := self.client.assignment()) or not wanted <= held:
            if time.monotonic() > deadline:
                if not held:
                    raise SourceUnavailable(
                        f"{self.endpoint.describe()}: consumer group {self.cfg.group_id!r} got no partitions "
                        f"of {list(self.cfg.topics)} within {timeout:g} s"
                    )
                raise SourceUnavailable(
                    f"{self.endpoint.describe()}: consumer group {self.cfg.group_id!r} gave this run "
                    f"{sorted(map(str, held))} of {sorted(map(str, wanted))} within {timeout:g} s; "
                    "the others are held by another member of the group (another consumer with this "
                    "group_id); expected the run alone in its group. Nothing of this run was committed"
                )
            # until every partition is held, poll one record at a time: enough to stay in the group
            self.take(self.client.poll(1 if held else max(1, self._budget()), 0.2))

    def _budget(self) -> int:
        """Records the next poll may return."""
        if self.cfg.max_records is None:
            return self.cfg.poll_records
        return min(self.cfg.poll_records, self.cfg.max_records - self.drained.consumed)

    def take(self, segments: list[Segment]) -> None:
        drained = self.drained
        for segment in segments:
            tp = TopicPartition(segment.topic, segment.partition)
            drained.first.setdefault(tp, segment.offsets[0])
            drained.last[tp] = segment.offsets[-1]
            n = len(segment)
            self.rows += n
            self.batch_rows += n
            drained.consumed += n
        self.batch += segments
        if self.batch_rows >= DECODE_ROWS:
            self._hand_over()

    def run(self) -> Drained:
        """Poll until each assigned partition reaches the end offset seen at the start, or a budget ends."""
        cfg, drained = self.cfg, self.drained
        started = last_data = time.monotonic()
        self._track_new_partitions()
        behind = self._behind()
        shown = Progress("kafka records drained", cfg.max_records, "record")
        while True:
            if self.rows >= cfg.chunk_rows:
                self._flush()
            stop = self._stop_reason(behind, started)
            if stop:
                drained.stopped_by = stop
                break
            batch = self.client.poll(self._budget(), _POLL_S)
            if batch:
                before = drained.consumed
                self.take(batch)
                shown.update(drained.consumed - before, partitions_behind=len(behind))
                last_data = time.monotonic()
            elif time.monotonic() - last_data > cfg.idle_timeout_s:
                raise SourceUnavailable(
                    f"{self.endpoint.describe()}: no records for {cfg.idle_timeout_s:g} s while partitions "
                    f"{sorted(str(tp) for tp in behind)} are behind their end offsets; the broker is down or "
                    "unreachable. Nothing of this run was committed"
                )
            if self.reassigned:
                self._track_new_partitions()
            behind = self._behind()
        shown.close()
        self._flush()
        return drained

    def _stop_reason(self, behind: set[TopicPartition], started: float) -> str | None:
        if not behind:
            return "end_offsets"
        if self.cfg.max_records is not None and self.drained.consumed >= self.cfg.max_records:
            return "max_records"
        if self.cfg.max_seconds is not None and time.monotonic() - started >= self.cfg.max_seconds:
            return "max_seconds"
        return None

    def _behind(self) -> set[TopicPartition]:
        """Assigned partitions not yet at their bound; the others are paused.

        A partition's bound is its end offset seen at the start, raised to the high watermark of the
        first fetch response for it (a broker may report lagging end offsets: Tansu counts a batch as
        one offset). A partition is done only once a fetch response confirmed its bound.
        """
        client, drained = self.client, self.drained
        partitions = client.assignment()
        for tp in partitions - set(drained.confirmed):
            highwater = client.highwater(tp)
            if highwater is not None:
                drained.confirmed[tp] = highwater
                drained.end[tp] = max(drained.end.get(tp, 0), highwater)
        behind = {tp for tp in partitions if tp not in drained.confirmed or self._short(tp)}
        done = (partitions - behind) - client.paused()
        if done:
            client.pause(done)
        return behind

    def _short(self, tp: TopicPartition) -> bool:
        position = self.client.position(tp)
        return position is None or position < self.drained.end.get(tp, 0)

    def _track_new_partitions(self) -> None:
        """End offsets of partitions assigned (at the start, or by a rebalance) that have none yet."""
        self.reassigned = False
        new = [tp for tp in self.client.assignment() if tp not in self.drained.end]
        if new:
            self.drained.end.update(self.client.end_offsets(new))

    def _hand_over(self) -> None:
        """The polled batch to the decoder (kept back when this run lands nothing)."""
        if self.batch and self.lander is not None:
            self.lander.add(self.batch)
            self.batch, self.batch_rows = [], 0

    def _flush(self) -> None:
        """The current chunk becomes a part."""
        self._hand_over()
        if self.rows and self.lander is not None:
            self.lander.land()
        self.rows = 0


def commit(
    client: KafkaClient, offsets: dict[TopicPartition, int], run_id: str, endpoint: KafkaEndpoint
) -> dict[str, int]:
    """Commit ``{TopicPartition: next offset}`` (never backwards); what was committed, by ``topic:partition``.

    Only partitions this consumer still owns are committed: one taken away by a rebalance belongs to
    another consumer now, which reads it again from its committed offset (the copies are dropped before
    the validated tier).
    """
    owned = client.assignment()
    try:
        current = client.committed([tp for tp in offsets if tp in owned])
        forward = {
            tp: offset for tp, offset in offsets.items() if tp in current and _ahead(offset, current[tp])
        }
        if forward:
            client.commit(forward, f"flywheel run {run_id}")
    except KafkaClientError as exc:
        raise SourceUnavailable(
            f"{endpoint.describe()}: committing offsets failed ({exc}); the landing "
            "partition is complete, so a retry of this run finishes the commit, and a later run's copies "
            "of these records are dropped before the validated tier"
        ) from None
    return {str(tp): offset for tp, offset in forward.items()}


def _ahead(offset: int, committed: int | None) -> bool:
    return committed is None or committed < offset


# -- one run ------------------------------------------------------------------------------------


def run(
    params: Params, settings: Settings, run_id: str, endpoint: KafkaEndpoint | None = None
) -> dict[str, Any]:
    """Drain the consumer group's backlog into ``landing/source=kafka/run=<run_id>``; commit after.

    Args:
        params: the loaded params (schema, ``ingest`` and its ``kafka`` section).
        settings: where the lake lives.
        run_id: the run's id; a retry with the same id rewrites (or, when complete, finishes) its partition.
        endpoint: the brokers (default: from the environment).

    Returns:
        A JSON-able summary: consumed, landed, quarantined, reasons, offsets per topic partition,
        committed offsets, landing and quarantine partitions.

    Raises:
        SourceUnavailable: the broker cannot be reached (the message names it).
        IngestError: a topic is missing, or a count does not add up.
    """
    cfg = params.ingest.kafka
    endpoint = endpoint or KafkaEndpoint.from_env()
    lake = Lake(settings.lake_root(params))
    landing = lake.partition("landing", run_id, source=SOURCE)
    quarantine = lake.partition("quarantine", run_id, source=SOURCE)
    done = lake.read_json(f"{landing}/{MANIFEST}")
    if done:
        return _finish_commit(done, cfg, endpoint, run_id, landing, quarantine)
    lake.reset_partition(landing)
    lake.reset_partition(quarantine)
    target = ChunkTarget(
        lake.root, landing, quarantine, params.schema, params.ingest, pd.Timestamp.now(tz="UTC")
    )
    try:
        return _ingest(target, lake, cfg, endpoint, run_id)
    except BaseException:
        if not lake.fs.exists(f"{landing}/{MANIFEST}"):  # a complete partition stays; a partial one goes
            lake.reset_partition(landing)  # (after a kill -9, the missing manifest keeps it invisible)
            lake.reset_partition(quarantine)
        raise


def _ingest(
    target: ChunkTarget, lake: Lake, cfg: KafkaSourceConfig, endpoint: KafkaEndpoint, run_id: str
) -> dict[str, Any]:
    clock = _Phases()
    with contextlib.ExitStack() as stack:
        stack.enter_context(_frozen_heap())
        stack.enter_context(_system_memory_pool())
        if cfg.readers > 1:
            readers = stack.enter_context(Readers(_ReaderJob(target, cfg, endpoint), cfg.readers))
            client = stack.enter_context(_closing(open_client(endpoint, cfg)))
            clock.lap("connect")
            _Drain(client, cfg, endpoint, None).join()  # what the join's polls returned, a reader reads again
            clock.lap("join")
            drained, chunks = readers.drain(client)
            clock.lap("drain")
        else:
            lander = stack.enter_context(Lander(target, cfg.workers))
            client = stack.enter_context(_closing(open_client(endpoint, cfg)))
            clock.lap("connect")
            polling = _Drain(client, cfg, endpoint, lander)
            polling.join()
            clock.lap("join")
            drained = polling.run()
            clock.lap("drain")
            chunks = lander.finish()
            clock.lap("land")
        if not drained.consumed:
            return {**_nothing_new(run_id, endpoint, cfg, drained), "seconds": clock.laps}
        manifest = _manifest(target, run_id, endpoint, cfg, drained, chunks, _next_offsets(drained))
        _write_manifests(lake, target, manifest)
        clock.lap("manifest")
        committed = commit(client, _next_offsets(drained), run_id, endpoint)
        clock.lap("commit")
    log.info(
        "kafka ingest %s: %s consumed, %s landed, %s quarantined; committed %s",
        run_id,
        manifest["counts"]["consumed"],
        manifest["counts"]["landed"],
        manifest["counts"]["quarantined"],
        committed,
    )
    summary = _summary(manifest, target.landing, target.quarantine, committed, resumed=False)
    return {**summary, "seconds": clock.laps}


class _Phases:
    """Seconds spent in each phase of a run, for the summary (where does a slow run spend its time?)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 3)
        self._last = now


def _write_manifests(lake: Lake, target: ChunkTarget, manifest: dict[str, Any]) -> None:
    """The quarantine manifest, then the landing manifest, last: from then on the partition is complete."""
    if manifest["counts"]["quarantined"]:
        write_manifest(lake, target.quarantine, {**manifest, "data": manifest["quarantine_parts"]})
    if not manifest["parts"]:  # everything was quarantined: an empty part keeps the partition readable
        empty = records.arrow_schema(target.schema).empty_table()
        lake.write_bytes(f"{target.landing}/{part_name(0, '.parquet')}", table_bytes(empty))
        manifest["parts"] = [part_name(0, ".parquet")]
    write_manifest(lake, target.landing, {**manifest, "data": manifest["parts"]})


@contextlib.contextmanager
def _system_memory_pool() -> Iterator[None]:
    """While a run decodes, Arrow allocates from the C library's heap, which hands freed pages back.

    Arrow's default allocator (mimalloc) keeps the pages of freed batches for reuse, so a decoding
    process stayed at its high-water mark: the decode-and-land child of a 1M-message drain peaked at
    168-175 MB RSS with it and 155-164 MB with this, its drain no slower (docs/benchmarks.md). The
    children, forked inside, inherit it; the run's process has its own allocator back after the run.
    """
    previous = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        yield
    finally:
        pa.set_memory_pool(previous)


@contextlib.contextmanager
def _frozen_heap() -> Iterator[None]:
    """The garbage collector leaves the objects alive now (the modules' ~80k) alone while the run lasts.

    A client allocates a record object per message, so the collector runs thousands of times during a
    drain, and each full pass also walked the imported modules' objects: 1.2 s of a 1M-message drain.
    The decode-and-land children, forked inside, inherit the frozen heap and keep its pages shared.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextlib.contextmanager
def _closing(client: KafkaClient) -> Iterator[KafkaClient]:
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            client.close()


def _next_offsets(drained: Drained) -> dict[TopicPartition, int]:
    """The offsets to commit: each partition read from, at the next offset after what was landed."""
    return {tp: last + 1 for tp, last in drained.last.items()}


def _manifest(
    target: ChunkTarget,
    run_id: str,
    endpoint: KafkaEndpoint,
    cfg: KafkaSourceConfig,
    drained: Drained,
    chunks: list[ChunkSummary],
    next_offsets: dict[TopicPartition, int],
) -> dict[str, Any]:
    consumed = sum(c.consumed for c in chunks)
    landed = sum(c.landed for c in chunks)
    quarantined = sum(c.quarantined for c in chunks)
    check_counts(consumed, landed, quarantined)
    if consumed != drained.consumed:
        raise IngestError(f"polled {drained.consumed} records but chunks hold {consumed}")
    by_partition: dict[str, list[int]] = {}
    for c in chunks:
        for name, (n, q) in c.by_partition.items():
            counts = by_partition.setdefault(name, [0, 0])
            counts[0] += n
            counts[1] += q
    offsets = [
        {
            "topic": tp.topic,
            "partition": tp.partition,
            "first": drained.first[tp],
            "last": drained.last[tp],
            "next": next_offsets[tp],
            "end_at_start": drained.end.get(tp),
            "consumed": by_partition[f"{tp.topic}:{tp.partition}"][0],
            "quarantined": by_partition[f"{tp.topic}:{tp.partition}"][1],
            "landed": by_partition[f"{tp.topic}:{tp.partition}"][0]
            - by_partition[f"{tp.topic}:{tp.partition}"][1],
        }
        for tp in sorted(drained.last, key=lambda t: (t.topic, t.partition))
    ]
    times = [c.min_event_time for c in chunks if c.min_event_time] + [
        c.max_event_time for c in chunks if c.max_event_time
    ]
    reasons: Counter[str] = Counter()
    for c in chunks:
        reasons.update(c.reasons)
    return {
        "run_id": run_id,
        "source": SOURCE,
        "bootstrap": endpoint.bootstrap_servers,
        "group_id": cfg.group_id,
        "topics": list(cfg.topics),
        "schema": target.schema.name,
        "offsets": offsets,
        "counts": {"consumed": consumed, "landed": landed, "quarantined": quarantined},
        "reasons": dict(sorted(reasons.items())),
        "rows": landed,
        "parts": [c.part for c in chunks if c.part],
        "quarantine_parts": [c.quarantine_part for c in chunks if c.quarantine_part],
        "stopped_by": drained.stopped_by,
        "min_event_time": min(times) if times else None,
        "max_event_time": max(times) if times else None,
        "written_at": datetime.now(UTC).isoformat(),
    }


def _summary(
    manifest: dict[str, Any], landing: str, quarantine: str, committed: dict[str, int], resumed: bool
) -> dict[str, Any]:
    counts = manifest["counts"]
    return {
        "run_id": manifest["run_id"],
        "source": SOURCE,
        "bootstrap": manifest["bootstrap"],
        "topics": manifest["topics"],
        **counts,
        "reasons": manifest["reasons"],
        "offsets": manifest["offsets"],
        "committed": committed,
        "parts": len(manifest["parts"]),
        "stopped_by": manifest["stopped_by"],
        "resumed": resumed,
        "landing_partition": landing,
        "quarantine_partition": quarantine if counts["quarantined"] else None,
    }


def _nothing_new(
    run_id: str, endpoint: KafkaEndpoint, cfg: KafkaSourceConfig, drained: Drained
) -> dict[str, Any]:
    log.info("kafka ingest %s: no new records on %s", run_id, list(cfg.topics))
    return {
        "run_id": run_id,
        "source": SOURCE,
        "bootstrap": endpoint.bootstrap_servers,
        "topics": list(cfg.topics),
        "consumed": 0,
        "landed": 0,
        "quarantined": 0,
        "reasons": {},
        "offsets": [],
        "committed": {},
        "parts": 0,
        "stopped_by": drained.stopped_by,
        "resumed": False,
        "landing_partition": None,
        "quarantine_partition": None,
        "message": f"no new records on {list(cfg.topics)} for group {cfg.group_id!r}; nothing written",
    }


def _finish_commit(
    manifest: dict[str, Any],
    cfg: KafkaSourceConfig,
    endpoint: KafkaEndpoint,
    run_id: str,
    landing: str,
    quarantine: str,
) -> dict[str, Any]:
    """A retry of a run whose partition is complete: commit its offsets (forward only), rewrite nothing.

    The partition may already be validated, so it is never reset: its records stay exactly where they are.
    """
    offsets = {TopicPartition(o["topic"], o["partition"]): o["next"] for o in manifest["offsets"]}
    with _closing(open_client(endpoint, cfg)) as client:
        _Drain(client, cfg, endpoint, None).join()
        committed = commit(client, offsets, run_id, endpoint)
    log.info("kafka ingest %s: partition already complete; committed %s", run_id, committed or "nothing new")
    return _summary(manifest, landing, quarantine, committed, resumed=True)
