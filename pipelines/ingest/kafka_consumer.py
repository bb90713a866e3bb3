"""The consuming side of the Kafka source: join the group, drain the backlog batch by batch, commit.

:class:`Drain` polls and hands each batch of records to a *sink* (the decoders,
:class:`pipelines.ingest.kafka.Lander`); it never decodes, lands or writes anything, and
:func:`commit_offsets` commits only the offsets it is given, once the run's partition is complete.

This module imports neither pandas nor pyarrow. With ``ingest.kafka.workers`` >= 1 the consumer runs in a
process of its own (:class:`ConsumerProcess`): a fresh interpreter that holds the client, its buffers and
this module, and sends the batches through a pipe to the run's process, which decodes and lands them.
The run's process imports pandas and pyarrow; a consumer forked from it carried them too (about 100 MB
more resident memory, and a larger heap). With ``workers: 0``, :class:`LocalConsumer` does the same in the
run's own process.

The consumer process dies with the run's process (``kill -9`` included), and the run fails if the
consumer process dies: either way nothing is committed, and the next run reads the records again.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

from pipelines.common.config import KafkaSourceConfig
from pipelines.common.progress import Progress
from pipelines.ingest.endpoints import KafkaEndpoint, SourceUnavailable
from pipelines.ingest.kafka_clients import KafkaClient, KafkaClientError, Segment, TopicPartition, open_client
from pipelines.ingest.landing import IngestError

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 3  # batches handed over and not yet decoded: bounds the consumer's memory
DECODE_ROWS = 10_000  # records handed to the decoder at a time (a chunk is landed whole, in one part)
POLL_S = 0.5
_EXIT_WAIT_S = 30.0  # for the consumer process to leave the group and end, before it is killed


class Sink(Protocol):
    """Where a drain's batches go: the decoders of the run's chunks."""

    def add(self, segments: list[Segment]) -> None:
        """One batch of the current chunk."""
        ...

    def land(self) -> None:
        """The batches added since the last call are one chunk."""
        ...


@dataclass
class Drained:
    """How far a run read: per topic partition the first/last offsets landed, and why it stopped."""

    first: dict[TopicPartition, int] = field(default_factory=dict)
    last: dict[TopicPartition, int] = field(default_factory=dict)
    end: dict[TopicPartition, int] = field(default_factory=dict)
    confirmed: dict[TopicPartition, int] = field(default_factory=dict)  # high watermark of the first fetch
    consumed: int = 0
    stopped_by: str = "end_offsets"


class Drain:
    """One run's polling: join the group, then poll batches into chunks until the run's bound."""

    def __init__(
        self, client: KafkaClient, cfg: KafkaSourceConfig, endpoint: KafkaEndpoint, sink: Sink | None
    ):
        self.client, self.cfg, self.endpoint, self.sink = client, cfg, endpoint, sink
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
            batch = self.client.poll(self._budget(), POLL_S)
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
        if self.batch and self.sink is not None:
            self.sink.add(self.batch)
            self.batch, self.batch_rows = [], 0

    def _flush(self) -> None:
        """The current chunk becomes a part."""
        self._hand_over()
        if self.rows and self.sink is not None:
            self.sink.land()
        self.rows = 0


def commit_offsets(
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


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """The garbage collector leaves the objects alive now (the modules' ~80k) alone while the run lasts.

    A client allocates a record object per message, so the collector runs thousands of times during a
    drain, and each full pass also walked the imported modules' objects: 1.2 s of a 1M-message drain.
    The decode-and-land children, forked inside, inherit the frozen heap and keep its pages shared.
    (The consumer's own process, with ``workers`` >= 1, freezes its small heap too.)
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextlib.contextmanager
def closing(client: KafkaClient) -> Iterator[KafkaClient]:
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            client.close()


def die_with(parent: int) -> None:
    """In a child: ignore Ctrl-C (the parent handles it) and die with the parent, even on ``kill -9``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError, AttributeError):  # Linux: the kernel kills us when the parent dies
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()


def _exit_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


# -- the run's consumer: in the run's process, or in a process of its own -------------------------


class Consumer(Protocol):
    """The run's consumer, wherever it runs: join the group, drain to a sink, commit once told."""

    def join(self, sink: Sink | None) -> None:
        """Join the group; the batches polled from now on go to ``sink``."""
        ...

    def drain(self) -> Drained:
        """Poll up to the run's bound."""
        ...

    def commit(self, offsets: dict[TopicPartition, int], run_id: str) -> dict[str, int]:
        """Commit ``offsets`` forward; what was committed, by ``topic:partition``."""
        ...


class LocalConsumer:
    """The run's consumer in the run's own process (``workers: 0``, parallel readers, a commit retry)."""

    def __init__(self, endpoint: KafkaEndpoint, cfg: KafkaSourceConfig) -> None:
        self.endpoint, self.cfg = endpoint, cfg
        self._client: KafkaClient | None = None
        self._drain: Drain | None = None

    @property
    def client(self) -> KafkaClient:
        assert self._client is not None, "use LocalConsumer as a context manager"
        return self._client

    def __enter__(self) -> LocalConsumer:
        self._client = open_client(self.endpoint, self.cfg)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()

    def join(self, sink: Sink | None) -> None:
        """Join the group (see :meth:`Drain.join`); the drain's batches will go to ``sink``."""
        self._drain = Drain(self.client, self.cfg, self.endpoint, sink)
        self._drain.join()

    def drain(self) -> Drained:
        """Poll up to the run's bound (see :meth:`Drain.run`)."""
        assert self._drain is not None, "join first"
        return self._drain.run()

    def commit(self, offsets: dict[TopicPartition, int], run_id: str) -> dict[str, int]:
        """See :func:`commit_offsets`."""
        return commit_offsets(self.client, offsets, run_id, self.endpoint)


class ConsumerProcess:
    """The run's consumer in a fresh process that imports only the client and this module.

    Its batches come through a pipe and go to the sink given to :meth:`join`, in the run's process. The
    process sends a batch from a thread of its own, so it keeps polling while the run's process decodes,
    up to ``MAX_IN_FLIGHT`` batches ahead. An error there (a broker away, a missing topic) is raised here
    as it was raised there; a consumer process that ends unexpectedly fails the run.
    """

    def __init__(self, endpoint: KafkaEndpoint, cfg: KafkaSourceConfig) -> None:
        self.endpoint, self.cfg = endpoint, cfg
        self._proc: subprocess.Popen[bytes] | None = None
        self._to: Connection | None = None
        self._from: Connection | None = None
        self._sink: Sink | None = None

    def __enter__(self) -> ConsumerProcess:
        to_child, child_in = os.pipe()
        child_out, from_child = os.pipe()
        package_root = str(Path(__file__).resolve().parents[2])  # where ``pipelines`` is importable from
        path = os.environ.get("PYTHONPATH")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([package_root, *([path] if path else [])])}
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _ENTRY, str(to_child), str(from_child)],
                pass_fds=(to_child, from_child),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # the run's summary owns stdout; the consumer logs to stderr
                env=env,
            )
        finally:
            os.close(to_child)
            os.close(from_child)
        self._to, self._from = Connection(child_in, readable=False), Connection(child_out, writable=False)
        try:
            self._to.send((os.getpid(), self.endpoint, self.cfg, logging.getLogger().getEffectiveLevel()))
            self._expect("connected")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        """Let the consumer close its client (it leaves the group); kill it if it does not end in time."""
        proc = self._proc
        if proc is None:
            return
        if exc and exc[0] is not None and proc.poll() is None:
            proc.terminate()  # a failed run: the consumer stops where it is and closes its client
        for conn in (self._to, self._from):
            if conn is not None:
                conn.close()
        try:
            proc.wait(_EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def join(self, sink: Sink | None) -> None:
        """Join the group (see :meth:`Drain.join`); the drain's batches will go to ``sink``."""
        self._sink = sink
        self._expect("joined")

    def drain(self) -> Drained:
        """Hand each batch to the sink as it comes, up to the run's bound (see :meth:`Drain.run`)."""
        drained: Drained = self._expect("drained")
        return drained

    def commit(self, offsets: dict[TopicPartition, int], run_id: str) -> dict[str, int]:
        """See :func:`commit_offsets` (in the consumer process, which holds the partitions)."""
        assert self._to is not None, "use ConsumerProcess as a context manager"
        self._to.send(("commit", (offsets, run_id)))
        committed: dict[str, int] = self._expect("committed")
        return committed

    def _expect(self, wanted: str) -> Any:
        """The payload of the next ``wanted`` message; the batches before it go to the sink (the join's
        polls may return records too)."""
        while True:
            kind, payload = self._receive()
            if kind == wanted:
                return payload
            if kind == "add" and self._sink is not None:
                self._sink.add(payload)
            elif kind == "land" and self._sink is not None:
                self._sink.land()
            elif kind not in ("add", "land"):
                raise IngestError(f"the Kafka consumer process sent {kind!r}; expected {wanted!r}")

    def _receive(self) -> tuple[str, Any]:
        assert self._from is not None and self._proc is not None, "use ConsumerProcess as a context manager"
        try:
            kind, payload = self._from.recv()
        except (EOFError, OSError):
            status = self._proc.wait()
            raise IngestError(
                f"the Kafka consumer process (pid {self._proc.pid}) ended with exit status {status} before "
                "the run finished; nothing of this run was committed"
            ) from None
        if kind == "error":
            raise payload
        return kind, payload


# -- in the consumer process ----------------------------------------------------------------------

_ENTRY = (
    "import sys; from pipelines.ingest.kafka_consumer import serve; serve(int(sys.argv[1]), int(sys.argv[2]))"
)


class _Outbox:
    """Sends to the run's process from a thread of its own, at most ``MAX_IN_FLIGHT`` messages queued.

    It is the drain's sink in the consumer process: the poll loop goes on while a batch is pickled and
    written, and waits only when the run's process is that far behind.
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.failed: BaseException | None = None
        self._queue: queue.Queue[tuple[str, Any] | None] = queue.Queue(MAX_IN_FLIGHT)
        self._thread = threading.Thread(target=self._send, name="flywheel-kafka-outbox", daemon=True)
        self._thread.start()

    def add(self, segments: list[Segment]) -> None:
        self.put(("add", segments))

    def land(self) -> None:
        self.put(("land", None))

    def put(self, message: tuple[str, Any]) -> None:
        while True:
            if self.failed is not None:
                raise IngestError(f"the run's process stopped reading ({self.failed})")
            try:
                self._queue.put(message, timeout=POLL_S)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Send what is queued, then stop the thread."""
        if self.failed is None:
            self._queue.put(None)
            self._thread.join()

    def _send(self) -> None:
        while (message := self._queue.get()) is not None:
            try:
                self.conn.send(message)
            except (OSError, pickle.PicklingError) as exc:
                self.failed = exc
                return


_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def serve(inbox_fd: int, outbox_fd: int) -> None:
    """The consumer process: connect, join, drain to the sink in the run's process, commit when told."""
    inbox, outbox = Connection(inbox_fd, writable=False), Connection(outbox_fd, readable=False)
    parent, endpoint, cfg, level = inbox.recv()
    die_with(parent)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # a failed run: close the client, leave the group
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    sent = _Outbox(outbox)
    try:
        with frozen_heap(), LocalConsumer(endpoint, cfg) as consumer:
            sent.put(("connected", None))
            consumer.join(sent)
            sent.put(("joined", None))
            sent.put(("drained", consumer.drain()))
            sent.close()
            request = _next_request(inbox)
            if request is not None:
                offsets, run_id = request
                outbox.send(("committed", consumer.commit(offsets, run_id)))
    except BaseException as exc:  # noqa: BLE001 - every failure goes to the run's process, which raises it
        sent.close()
        if sent.failed is None and not isinstance(exc, SystemExit):
            with contextlib.suppress(OSError):
                outbox.send(("error", _picklable(exc)))


def _next_request(inbox: Connection) -> tuple[dict[TopicPartition, int], str] | None:
    """The commit the run's process asks for once its partition is complete; None when it asks none."""
    try:
        kind, payload = inbox.recv()
    except (EOFError, OSError):
        return None
    return payload if kind == "commit" else None


def _picklable(exc: BaseException) -> BaseException:
    """``exc`` itself when it crosses the pipe intact, else an IngestError with its type and message."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - an exception class pickle cannot rebuild
        return IngestError(f"the Kafka consumer failed: {type(exc).__name__}: {exc}")
    return exc


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)
