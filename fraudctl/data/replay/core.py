"""The replay itself: plan (everything that can fail without a broker), then read, encode and sequence in a
background thread while the calling thread produces; the summary accounts for every event.

Reading, parsing, encoding and sequencing run in a background thread (pyarrow and numpy release the GIL);
the main thread only calls `Producer.produce` (through map(), no Python bytecode per event) and serves the
delivery reports. The first chunk is handed over in growing pieces (FIRST_PIECES), so producing starts
after a few thousand rows instead of a whole chunk; the time mode and pass-through columns are still
judged on the whole first chunk.
"""

from __future__ import annotations

import csv
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import pyarrow as pa

from fraudctl.errors import BadInputError, FraudctlError, NotFoundError
from fraudctl.data.layout import US_PER_SECOND, ColumnMapping, resolve_format
from fraudctl.data.replay.encode import EncodedChunk, Encoder
from fraudctl.data.replay.options import ReplayOptions
from fraudctl.data.replay.producer import Connecting, Deliveries
from fraudctl.data.replay.send import Sender
from fraudctl.data.replay.sequence import Outgoing, Sequencer
from fraudctl.data.replay.source import CsvSource, ParquetSource, RawChunk, Reject, open_source, read_header
from fraudctl.data.replay.summary import ReplayProgress, ReplaySummary

if TYPE_CHECKING:
    from fraudctl.config import Config

FIRST_PIECES = (4_096, 12_288, 28_672, 61_440)  # rows at which the first chunk is cut (see iter_outgoing)
PREFETCH_CHUNKS = 2  # chunks parsed ahead of the producer
DRAIN_GRACE_SECONDS = 30.0  # beyond delivery_timeout, for librdkafka to time out and report the last events
_END = object()


def _prefetch(items: Iterator[Any], depth: int, stop: threading.Event) -> Iterator[Any]:
    """Run `items` in a thread, `depth` ahead; exceptions come out in order."""
    buffer: queue.Queue = queue.Queue(maxsize=depth)

    def work() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        buffer.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put((_END, None))
        except BaseException as exc:  # handed to the consumer
            buffer.put((_END, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # a generator stopped half way closes its file

    thread = threading.Thread(target=work, name="replay-reader", daemon=True)
    thread.start()
    try:
        while True:
            item, error = buffer.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                buffer.get(timeout=0.1)
            except queue.Empty:
                pass
        thread.join()


@dataclass
class Plan:
    options: ReplayOptions
    fmt: str
    mapping: ColumnMapping
    source: CsvSource | ParquetSource
    encoder: Encoder


def plan(options: ReplayOptions) -> Plan:
    """Open the file and resolve the mapping; everything that can fail without a broker fails here."""
    path = options.path
    if not path.exists():
        raise NotFoundError(f"file not found: {path}")
    if path.is_dir():
        raise BadInputError(f"{path} is a folder; give a CSV or parquet file")
    fmt = resolve_format(path, options.file_format)
    header = read_header(path, fmt)
    mapping = options.layout.resolve(header)
    source = open_source(path, fmt, header, options.skip, options.limit)
    delay_us = int(round(options.label_delay.total_seconds() * US_PER_SECOND))
    encoder = Encoder(mapping, options.labels, delay_us)
    return Plan(options, fmt, mapping, source, encoder)


def iter_outgoing(plan_: Plan, sequencer: Sequencer) -> Iterator[tuple[EncodedChunk | None, Outgoing]]:
    """Encoded chunks with their events in sending order; the labels due after the end come last."""
    source = plan_.source
    try:
        first = True
        for raw in source.chunks():
            pieces = [raw]
            if first and len(raw.index):
                # The producer waits for the first chunk: hand it over in growing pieces so sending starts
                # early. Time mode and pass-through columns are still judged on the whole chunk.
                first = False
                plan_.encoder.decide(raw)
                pieces = _split(raw, FIRST_PIECES)
            for piece in pieces:
                chunk = plan_.encoder.encode(piece)
                yield chunk, sequencer.add(chunk)
        yield None, sequencer.finish()
    except (pa.ArrowInvalid, OSError) as exc:  # e.g. bytes that are not UTF-8: pyarrow stops the whole read
        done = source.rows_before()
        raise BadInputError(f"{plan_.options.path}: cannot read on after data row {done:,}: {exc}",
                            hint="fix or remove that part of the file, then resume with --skip") from None


def _split(raw: RawChunk, bounds: Sequence[int]) -> list[RawChunk]:
    """The chunk cut before rows `bounds`; the reader's rejects go with the rows around their line."""
    n = len(raw.index)
    cuts = [b for b in bounds if 0 < b < n]
    if not cuts:
        return [raw]
    starts, ends = [0, *cuts], [*cuts, n]
    pieces = []
    for number, (lo, hi) in enumerate(zip(starts, ends)):
        last = number == len(starts) - 1
        # Rejects before the next piece's first line (all of those left, for the last piece).
        rejects = [r for r in raw.rejects if (number == 0 or r.where >= raw.where[lo])
                   and (last or r.where < raw.where[hi])]
        pieces.append(RawChunk(columns={name: col.slice(lo, hi - lo) for name, col in raw.columns.items()},
                               index=raw.index[lo:hi], where=raw.where[lo:hi], rejects=rejects))
    return pieces


class RejectsFile:
    def __init__(self, path: Path, where_name: str):
        self.path = path
        self.where_name = where_name
        self.count = 0
        self._fh = None
        self._writer = None
        try:
            path.unlink(missing_ok=True)  # a stale file from an earlier run would mislead
        except OSError as exc:
            raise BadInputError(f"cannot replace the rejects file {path}: {exc.strerror or exc}") from None

    def write(self, rejects: list[Reject]) -> None:
        if not rejects:
            return
        if self._fh is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = open(self.path, "w", newline="")
            except OSError as exc:
                raise BadInputError(f"cannot write the rejects file {self.path}: {exc.strerror or exc}") from None
            self._writer = csv.writer(self._fh)
            self._writer.writerow([self.where_name, "reason", "content"])
        for reject in rejects:
            self._writer.writerow([reject.where, reject.reason, reject.text])
        self.count += len(rejects)
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


@dataclass
class _Run:
    """One replay's moving parts after planning, and the summary they keep up to date."""

    options: ReplayOptions
    plan: Plan
    summary: ReplaySummary
    sender: Sender
    sequencer: Sequencer
    deliveries: Deliveries
    producer: Any
    rejects: RejectsFile
    only_errors: bool  # delivery_reports: "errors" (success reports kept in C)
    on_progress: Callable[[ReplayProgress], None] | None
    started: float = field(default_factory=time.monotonic)
    last_tick: float = 0.0

    def delivered(self) -> int:
        # With success reports kept in C, every event that left the producer's queue without a failure
        # report was delivered.
        return self.deliveries.delivered if not self.only_errors else \
            max(0, self.sender.produced - self.deliveries.failed - len(self.producer))

    def tick(self, force: bool = False, finished: bool = False) -> None:
        now = time.monotonic()
        if self.on_progress and (force or now - self.last_tick >= 0.1):
            self.last_tick = now
            options, sender = self.options, self.sender
            rows_sent = max(0, sender.last_row + 1 - options.skip)
            if options.limit is not None:
                fraction = min(1.0, rows_sent / options.limit) if options.limit else 1.0
            else:
                fraction = 1.0 if finished else self.plan.source.fraction(sender.last_row + 1)
            self.on_progress(ReplayProgress(self.summary.read, rows_sent, sender.produced, self.delivered(),
                                            fraction))

    def send(self, config: "Config", chunks: Iterator[tuple[EncodedChunk | None, Outgoing]],
             interrupt: threading.Event) -> None:
        """Produce every chunk, then wait for the reports; on an interrupt or a bad chunk, settle what was sent."""
        summary, sender, tick = self.summary, self.sender, self.tick
        try:
            for chunk, out in chunks:
                if chunk is not None:
                    self.rejects.write(chunk.rejects)
                    summary.read += chunk.read
                    summary.rejected += len(chunk.rejects)
                summary.out_of_order += out.out_of_order
                sender.send(out, tick)
                if interrupt.is_set():
                    raise KeyboardInterrupt
            sender.drain(config.replay.delivery_timeout + DRAIN_GRACE_SECONDS, tick)
        except KeyboardInterrupt:
            summary.interrupted = True
            chunks.close()
            sender.settle_interrupted_slice()
            try:
                if sender.drain(config.replay.interrupt_flush_timeout, tick):
                    sender.abandon()
            except KeyboardInterrupt:  # asked again: stop waiting
                sender.abandon()
        except FraudctlError:
            # Bad file content or a fatal producer error: what was produced still gets its chance.
            chunks.close()
            sender.settle_interrupted_slice()
            if not self.deliveries.fatal:
                sender.drain(config.replay.interrupt_flush_timeout, tick)
            raise

    def account(self) -> None:
        """Fill in the summary, however the replay ended."""
        summary, sender, deliveries, encoder = self.summary, self.sender, self.deliveries, self.plan.encoder
        summary.wall_seconds = time.monotonic() - self.started
        summary.skipped = min(self.options.skip, self.plan.source.rows_before())
        summary.extra_columns = list(encoder.extras or [])
        summary.ignored_columns = list(self.plan.mapping.ignored) + list(encoder.not_numeric)
        summary.time_format = encoder.time_mode or self.plan.mapping.time_format
        summary.transactions, summary.labels, summary.produced = sender.transactions, sender.labels, sender.produced
        summary.labels_pending = self.sequencer.pending
        summary.resume_skip = sender.last_row + 1 if sender.last_row >= 0 else None
        summary.failed = deliveries.failed
        # Whatever path got here, the events still in the producer are those whose report never came.
        summary.unconfirmed = len(self.producer)
        summary.delivered = self.delivered()
        summary.first_failure = deliveries.first_failure
        summary.broker_errors = list(deliveries.broker_errors)
        summary.rejects_file = str(self.rejects.path) if self.rejects.count else None
        summary.events_per_second = summary.delivered / summary.wall_seconds if summary.wall_seconds > 0 else 0.0


def replay(config: "Config", options: ReplayOptions, *,
           on_progress: Callable[[ReplayProgress], None] | None = None,
           interrupt: threading.Event | None = None,
           producer_factory: Callable[[Deliveries, Sequence[str]], Any] | None = None,
           deliveries: Deliveries | None = None) -> ReplaySummary:
    """Replay `options.path` into Kafka and return the summary.

    Stopping: set `interrupt` (the CLI does on the first Ctrl-C) or raise KeyboardInterrupt: reading stops,
    what was produced gets replay.interrupt_flush_timeout to be delivered (a KeyboardInterrupt during that
    wait gives up on it), and the summary comes back with interrupted=True.

    Raises before producing anything: NotFoundError/BadInputError for the file or mapping,
    UnavailableError/NotFoundError for the broker or topics. Rejects and delivery failures are counted in
    the summary; `raise_for_outcome` turns them into the exit status.

    `producer_factory(deliveries, topics)` gives the producer, its callbacks reporting to `deliveries`
    (default: a Connecting begun here, so the broker handshake overlaps the planning; the command line
    begins it earlier still and passes it with its `deliveries`).
    """
    deliveries = deliveries or Deliveries()
    if producer_factory is None:
        producer_factory = Connecting(config, deliveries).producer
    the_plan = plan(options)
    mapping, source = the_plan.mapping, the_plan.source
    tx_topic = config.kafka.topics.transactions.name
    label_topic = config.kafka.topics.labels.name if the_plan.encoder.labels else None
    summary = ReplaySummary(
        file=str(options.path), format=the_plan.fmt, preset=mapping.preset, mapping=mapping.describe(),
        extra_columns=[], ignored_columns=list(mapping.ignored), time_format=mapping.time_format,
        topics={"transactions": tx_topic, "labels": label_topic},
    )
    try:
        rejects = RejectsFile(options.rejects_file, source.where_name)
        topics = [tx_topic] + ([label_topic] if label_topic else [])
        producer = producer_factory(deliveries, topics)
    except BaseException:
        source.close()
        raise
    interrupt = interrupt or threading.Event()
    sequencer = Sequencer(options.rate, options.speedup)
    run = _Run(options, the_plan, summary, Sender(producer, deliveries, tx_topic, label_topic, interrupt),
               sequencer, deliveries, producer, rejects, config.replay.delivery_reports == "errors", on_progress)
    stop = threading.Event()
    # Reading, parsing, encoding and sequencing run ahead in a thread; this one only produces.
    chunks = _prefetch(iter_outgoing(the_plan, sequencer), PREFETCH_CHUNKS, stop)
    try:
        run.send(config, chunks, interrupt)
    finally:
        chunks.close()
        rejects.close()
        run.account()
        run.tick(force=True, finished=not summary.interrupted)
    return summary


def encoded_events(options: ReplayOptions) -> Iterator[Outgoing]:
    """The events `replay(options)` would produce, in order and paced the same way, without a broker: each
    Outgoing holds a chunk's JSON values, keys and, per event, whether it is a label. Rejected rows are
    left out (they are in `EncodedChunk.rejects`, which `replay` writes to the rejects file)."""
    the_plan = plan(options)
    for _, out in iter_outgoing(the_plan, Sequencer(options.rate, options.speedup)):
        yield out
