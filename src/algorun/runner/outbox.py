"""The runner's writes: handed to the producer in run order, acknowledged, written again when refused, and only
then counted as finished (`Progress.finished`), so an offset is never committed before the outputs it caused.

Two commit modes, one class each:
- `Outbox` (at-least-once): a run's writes go out at once; the run is finished when every one is acknowledged.
  The producer settles a `PendingBatch` with one future, and one sweep over the pending batches (in produce
  order) settles them instead of a callback per write. A refused write is written again, alone and in order,
  until it is acknowledged (`REWRITE_BACKOFF_S`): nothing is committed past it, so nothing is lost.
- `TransactionalOutbox`: every write joins the open Kafka transaction, which also carries the input offsets
  (`send_offsets_to_transaction`); a write refused inside it fails the transaction, which aborts, and the fetched
  batch is read again.

In both, a write too large for the broker is replaced (`Oversize`): a claim-checked reference when storage is
configured, else the dead letters of the run's inputs. Writing it again would stall its partition forever.

Words: a *plain* run read one message and wrote one embedded message to the first declared output with the
plain header layout (`contract.PLAIN_LAYOUT`); the inline path appends it to the fetched batch's `PendingBatch`
without building a `Write`. Every other run is a list of `Write`s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable

from algorun.api.configs import RunnerOutput
from algorun.bus.batch import Failures
from algorun.bus.errors import BusError, MessageTooLarge
from algorun.bus.interface import Consumer, Producer
from algorun.bus.offsets import OffsetTracker
from algorun.bus.types import Message, OutRecord, Receipt
from algorun.runner.metrics import RunnerMetrics
from algorun.runner.oversize import Oversize, Refused
from algorun.runner.progress import Progress
from algorun.runner.writes import Write, WriteKind, records

log = logging.getLogger(__name__)

REWRITE_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)
"""The waits before a refused write is written again: the first, the second, then the last one repeated."""

_monotonic = time.monotonic

Run = tuple[list[Message], float, int]
"""One run in a `PendingBatch`: its messages (staged parts and trigger), its start, how many writes are its own."""


class PendingBatch:
    """Writes of one or more runs, handed to the producer in one `produce_many` and waiting for its outcomes.

    One per fetched batch on the inline path (every run the batch finished inline), else one per run. `records`
    is what the producer got, in run order, in two segments:
    - the plain runs first (`plain`, `plain_started`, `plain_bytes`): one message each, its one write to the
      first declared output;
    - then the other runs: `runs` holds each run's messages, start time and how many of `writes` (consecutive,
      one per record after the plain ones) are its own. Once one is added, later runs go here too, so the
      records stay in run order."""

    __slots__ = ("future", "plain", "plain_bytes", "plain_started", "records", "runs", "writes")

    def __init__(self) -> None:
        self.records: list[OutRecord] = []
        self.plain: list[Message] = []
        self.plain_started: list[float] = []
        self.plain_bytes = 0
        self.runs: list[Run] = []
        self.writes: list[Write] = []
        self.future: asyncio.Future[Failures] | None = None

    def add(self, messages: list[Message], started: float, writes: list[Write]) -> None:
        self.runs.append((messages, started, len(writes)))
        self.writes.extend(writes)
        self.records.extend(records(writes))


class Outbox:
    """At-least-once writes (see the module docstring). `write` is called once per run; the inline path of a
    fetched batch collects its runs in `collecting` (`open_batch`/`close_batch`) and produces them at once."""

    def __init__(
        self,
        producer: Producer,
        progress: Progress,
        metrics: RunnerMetrics,
        oversize: Oversize,
        plain_output: RunnerOutput | None,
    ) -> None:
        self.producer = producer
        self._progress = progress
        self._metrics = metrics
        self._oversize = oversize
        self._plain_output = plain_output
        self._pending: deque[PendingBatch] = deque()  # in produce order
        self._sweep_armed = False
        self._background: set[asyncio.Task[None]] = set()
        self.collecting: PendingBatch | None = None

    # ---- handing writes over ----

    def open_batch(self) -> PendingBatch | None:
        """Collect the runs of one fetched batch's dispatch; None when runs are written one by one."""
        batch = self.collecting = PendingBatch()
        return batch

    def close_batch(self) -> None:
        """Produce what the dispatch collected, before any lane task runs: a lane's later writes follow these."""
        batch, self.collecting = self.collecting, None
        if batch is not None and batch.records:
            self.submit(batch)

    def write(self, messages: list[Message], started: float, writes: list[Write]) -> None:
        """Enqueue `writes` now (keeps run order); `messages` are finished once all are acknowledged."""
        if not writes:
            self.finished(messages, started)
            return
        batch = self.collecting
        if batch is None:
            batch = PendingBatch()
            batch.add(messages, started, writes)
            self.submit(batch)
        else:
            batch.add(messages, started, writes)

    def submit(self, batch: PendingBatch) -> None:
        """Enqueue a batch's writes now, in order, with one `produce_many`; the sweep settles it."""
        batch.future = self._produce_many(batch.records)
        self._pending.append(batch)
        if not self._sweep_armed:
            self._sweep()

    def _produce_many(self, batch: list[OutRecord]) -> asyncio.Future[Failures]:
        try:
            return asyncio.ensure_future(self.producer.produce_many(batch))
        except BusError as e:  # e.g. closed: every write failed (and is written again, or waits for shutdown)
            fut: asyncio.Future[Failures] = asyncio.get_running_loop().create_future()
            fut.set_result(dict.fromkeys(range(len(batch)), e))
            return fut

    # ---- acknowledgements ----

    def _sweep(self, _: object = None) -> None:
        """Settle the batches whose writes are all acknowledged, oldest first, then wait on the first batch still
        in flight: one callback per batch rather than per write. A batch behind an unacknowledged one waits for
        the next sweep, which delays its commit by at most that batch's round trip; offsets are still committed
        only as the contiguous finished prefix."""
        self._sweep_armed = False
        pending = self._pending
        while pending:
            head = pending[0]
            fut = head.future
            assert fut is not None
            if not fut.done():
                self._sweep_armed = True
                fut.add_done_callback(self._sweep)
                return
            pending.popleft()
            self._settle(head)

    def _settle(self, batch: PendingBatch) -> None:
        """Count each write's outcome; a run is finished when all its writes were acknowledged, else its refused
        writes are written again (`_rewrite`) and only then is it finished."""
        fut = batch.future
        assert fut is not None
        failures: Failures
        if fut.cancelled() or fut.exception() is not None:
            error = BusError(f"produce failed: {'cancelled' if fut.cancelled() else fut.exception()}")
            failures = dict.fromkeys(range(len(batch.records)), error)
        else:
            failures = fut.result()
        if not failures:  # all acknowledged
            if batch.plain:
                self._finished_plain(batch.plain, batch.plain_started, batch.plain_bytes)
            self._count_acks(batch.writes)
            self._finished_runs(batch.runs)
            return
        metrics = self._metrics
        plain = len(batch.plain)
        if plain:
            acked: list[Message] = []
            acked_started: list[float] = []
            acked_bytes = 0
            for j, (m, started) in enumerate(zip(batch.plain, batch.plain_started, strict=True)):
                refused = failures.get(j)
                record = batch.records[j]
                if refused is None:
                    acked.append(m)
                    acked_started.append(started)
                    acked_bytes += len(record[1])
                    continue
                metrics.produce_error(record[0], type(refused).__name__)
                self.spawn(self._rewrite([(self._plain_write(record), refused)], [m], started))
            if acked:
                self._finished_plain(acked, acked_started, acked_bytes)
        writes = batch.writes
        i = plain
        for messages, started, n in batch.runs:
            failed: Refused | None = None
            for j in range(i, i + n):
                w = writes[j - plain]
                refused = failures.get(j)
                if refused is not None:
                    metrics.produce_error(w.topic, type(refused).__name__)
                    if failed is None:
                        failed = []
                    failed.append((w, refused))
                else:
                    self._count_acks([w])
            i += n
            if failed:
                self.spawn(self._rewrite(failed, messages, started))
            else:
                self.finished(messages, started)

    def _plain_write(self, record: OutRecord) -> Write:
        """The `Write` of a plain run's record, to write it again."""
        cfg = self._plain_output
        assert cfg is not None
        topic, value, key, headers, _ = record
        return Write(topic, value, key or b"", headers or [], cfg.name, len(value), WriteKind.OUTPUT)

    def _finished_plain(self, messages: list[Message], started: list[float], data_bytes: int) -> None:
        """Plain runs acknowledged: counted in the metrics, and finished (one message each)."""
        cfg = self._plain_output
        assert cfg is not None and cfg.topic is not None
        metrics = self._metrics
        metrics.ack(cfg.topic, len(messages))
        metrics.output_bytes(cfg.name, WriteKind.OUTPUT, data_bytes, data_bytes)
        metrics.run_duration.observe_since(_monotonic(), started)  # started in run order: increasing
        self._progress.finished(messages, len(messages))

    def _count_acks(self, writes: list[Write]) -> None:
        """Acknowledged writes into the metrics, grouped (a batch's writes mostly share topic and output)."""
        metrics = self._metrics
        groups: dict[tuple[str, str, str], list[int]] = {}
        for w in writes:
            key = (w.topic, w.output, w.kind)
            counts = groups.get(key)
            if counts is None:
                counts = groups[key] = [0, 0, 0]
            counts[0] += 1
            counts[1] += len(w.value)
            counts[2] += w.data_size
        for (topic, output, kind), (n, message_bytes, data_bytes) in groups.items():
            metrics.ack(topic, n)
            metrics.output_bytes(output, kind, message_bytes, data_bytes)

    async def _rewrite(self, failed: Refused, messages: list[Message], started: float) -> None:
        """Writes the broker did not acknowledge: sent again, in their order, until it does (the offsets wait
        meanwhile). A write too large for the broker never will be: `Oversize` replaces it first."""
        attempt = 0
        pending = await self._oversize.replace(failed, messages)
        while pending:
            delay = REWRITE_BACKOFF_S[min(attempt, len(REWRITE_BACKOFF_S) - 1)]
            attempt += 1
            log.warning("%d writes not acknowledged; writing again in %ss", len(pending), delay)
            await asyncio.sleep(delay)
            failures: Failures
            try:
                failures = await self._produce_many(records(pending))
            except Exception as e:  # whatever the batch failed with, every write of it is tried again
                failures = dict.fromkeys(range(len(pending)), BusError(str(e)))
            still: Refused = []
            for j, w in enumerate(pending):
                error = failures.get(j)
                if error is not None:
                    self._metrics.produce_error(w.topic, type(error).__name__)
                    still.append((w, error))
                else:
                    self._metrics.ack(w.topic)
                    self._metrics.output_bytes(w.output, w.kind, len(w.value), w.data_size)
            pending = await self._oversize.replace(still, messages)
        self.finished(messages, started)

    # ---- finished runs ----

    def finished(self, messages: list[Message], started: float) -> None:
        """The run's writes are acknowledged: its messages (staged parts and trigger) may be committed."""
        self._finished_runs([(messages, started, 0)])

    def _finished_runs(self, runs: list[Run]) -> None:
        self._metrics.run_duration.observe_all([_monotonic() - started for _, started, _ in runs])
        if len(runs) == 1:
            self._progress.finished(runs[0][0], 1)
        else:
            self._progress.finished([m for messages, _, _ in runs for m in messages], len(runs))

    def spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def cancel(self) -> None:
        """Stop the rewrites in progress (at the end of a drain: their runs stay unfinished, read again)."""
        for t in list(self._background):
            t.cancel()


class TransactionalOutbox(Outbox):
    """Exactly-once writes: each run's writes join the open transaction at once; the transaction commits them
    with the input offsets (`commit`). A write the client refuses at once as too large never joined the
    transaction: `Oversize` replaces it inside the same transaction. Any other refusal makes the transaction
    fail (`failure`): committing without that write would lose it, so the transaction aborts."""

    def __init__(
        self,
        producer: Producer,
        progress: Progress,
        metrics: RunnerMetrics,
        oversize: Oversize,
        plain_output: RunnerOutput | None,
    ) -> None:
        super().__init__(producer, progress, metrics, oversize, plain_output)
        self.failure: BusError | None = None

    def open_batch(self) -> PendingBatch | None:
        return None

    def write(self, messages: list[Message], started: float, writes: list[Write]) -> None:
        """Acknowledged with the transaction: `messages` are finished now, unless a write is to be replaced."""
        refused = self._produce_in_transaction(writes)
        if refused:
            self.spawn(self._replace_in_transaction(refused, messages, started))
        else:
            self.finished(messages, started)

    def _produce_in_transaction(self, writes: list[Write]) -> Refused:
        """Produce into the open transaction; the writes the client refused at once as too large, with their
        errors. Any other refusal fails the transaction."""
        producer = self.producer
        refused: Refused = []
        for w in writes:
            try:
                fut = producer.produce(w.topic, w.value, key=w.key, headers=w.headers)
            except BusError as e:
                self._metrics.produce_error(w.topic, type(e).__name__)
                if isinstance(e, MessageTooLarge):
                    refused.append((w, e))
                else:
                    self.failure = e
                continue
            asyncio.ensure_future(fut).add_done_callback(_consume_exception)
        return refused

    async def _replace_in_transaction(self, refused: Refused, messages: list[Message], started: float) -> None:
        """The reference or the dead letters join the transaction, which then commits the run's outcome with its
        offsets. Anything else refused fails the transaction (the batch is read again)."""
        try:
            still = self._produce_in_transaction(await self._oversize.replace(refused, messages))
        except Exception as e:  # a bug; the transaction must not commit without this run's outcome
            log.exception("writing what replaces a refused write failed")
            self.failure = BusError(f"writing what replaces a refused write failed: {e}")
        else:
            if still:
                self.failure = still[0][1]
        self.finished(messages, started)  # counted out either way: the transaction waits for every run

    async def begin(self) -> None:
        await self.producer.begin_transaction()

    async def commit(self, consumer: Consumer, tracker: OffsetTracker) -> None:
        """Commit the writes with the finished input offsets; raises (and the caller aborts) when a write failed."""
        if self.failure is not None:
            failure, self.failure = self.failure, None
            raise failure
        offsets = tracker.take_moved()
        if offsets:
            await self.producer.send_offsets_to_transaction(consumer, offsets)
        await self.producer.commit_transaction()

    async def abort(self) -> None:
        await self.producer.abort_transaction()


def _consume_exception(fut: asyncio.Future[Receipt]) -> None:
    if not fut.cancelled():
        fut.exception()
