"""Kafka producer: the plain (non-blocking) confluent-kafka producer, delivery reports bridged to asyncio.

confluent-kafka's asyncio producer cannot send headers, so this wraps `confluent_kafka.Producer`:
- `produce` enqueues into librdkafka immediately (call order is partition order) and returns a future;
- delivery reports are served *on the event loop thread*: `produce` polls every `POLL_EVERY` messages (as a
  hand-written confluent-kafka loop does), and a timer polls every `POLL_INTERVAL_S` while anything is in flight.
  Not a poller thread: confluent-kafka takes the GIL once per delivery report, so such a thread fights the
  producing thread for the GIL on every message (`benchmarks/bus.py`, produce, shows the difference). The cost
  is up to `POLL_INTERVAL_S` of added ack latency when the loop is otherwise idle;
- what is in flight is librdkafka's own count (`len(producer)`: queued, unacknowledged, or acknowledged with its
  report not yet served) plus the overflow, read when needed, instead of a counter kept on every message and
  every report;
- a message's future is its own delivery callback (`_PendingDelivery`);
- only a transactional producer calls librdkafka off the loop (its transaction calls block, and serve delivery
  reports on the thread that runs them), so only its reports check their thread (`_FromAnyThread`): a plain
  producer's report is a bare call;
- a full librdkafka queue is backpressure: later messages wait, in order, in an overflow queue that drains as
  deliveries complete (callers bound their own backlog with `in_flight`).

Defaults favour not losing data: idempotence on (acks=all, ordered retries), `close()` drains.

The module is longer than most (about 560 lines): per-message produce, batches, the overflow queue,
transactions and close all act on one librdkafka handle and the serving of its delivery reports, and a split
would put a call between the per-message path and that state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from threading import get_ident
from types import MethodType
from typing import TYPE_CHECKING, Any, ClassVar

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka import Producer as _Producer
from confluent_kafka import TopicPartition as _TP

from algorun.bus.batch import BatchOutcomes, Failures
from algorun.bus.errors import BusClosed, BusError, ConfigError, ProduceFailed, TransactionError
from algorun.bus.interface import Consumer, Producer, failures_of
from algorun.bus.kafka.errors import is_auth_error, translate
from algorun.bus.types import Headers, OutRecord, Receipt, TopicPartition

if TYPE_CHECKING:
    from algorun.bus.settings import KafkaSettings

log = logging.getLogger(__name__)

PRODUCER_DEFAULTS: dict[str, str | int | float | bool] = {
    "enable.idempotence": True,
    "acks": "all",
    # Each hop of a pipeline waits for its batch once: librdkafka's 5 ms made a request through two algos wait 10 ms
    # or more at any load (benchmarks/latency.py). Under a backlog batches fill while a request is out anyway.
    "linger.ms": 1,
    # A small request goes out at once, not after the acknowledgement of the one before it.
    "socket.nagle.disable": True,
    "queue.buffering.max.messages": 200_000,
    "topic.metadata.propagation.max.ms": 10_000,
    # Topics are created explicitly (as on the local log); a typo must fail, not create a topic.
    "allow.auto.create.topics": False,
}
TXN_TIMEOUT_S = 60.0
DRAIN_TIMEOUT_S = 60.0
"""How long `close` waits for acknowledgements before it fails what is left."""
PURGE_WAIT_S = 5.0
"""How long `close` then waits for librdkafka to report the purged messages."""
POLL_EVERY = 1000
"""Serve delivery reports after this many `produce` calls: a busy loop never waits for the timer."""
POLL_INTERVAL_S = 0.001
"""How often an otherwise idle loop serves delivery reports while messages are in flight."""

_new_delivery = tuple.__new__  # Receipt(...) runs a Python-level __new__; this builds the same tuple in C
_Args = OutRecord
_Callback = Callable[[KafkaError | BusError | None, Any], None]
"""A message's delivery callback: librdkafka calls it with (error, message).

For `produce` it is the message's future itself (`_PendingDelivery`); for a batch, a handler bound to the batch
(and, off the fast path, to the message's index) with `MethodType`, not `functools.partial`: one object the cyclic
collector tracks instead of four (partial, its args tuple, its keywords dict, the bound method), and about half the
construction cost. These callbacks live until the broker acknowledges, so every tracked object is scanned by
each young-generation collection meanwhile (`benchmarks/bus.py` measures produce against raw confluent-kafka).
"""


class _PendingDelivery(asyncio.Future[Receipt]):
    """A message's acknowledgement that is also its delivery callback: librdkafka's report calls it.

    One object per message, instead of a future and a callback bound to it. By the time its report is
    served (linger.ms and a round trip to the broker later: thousands of messages at full speed), the object
    has left the CPU's caches, and each one touched then is a miss, so one object per message saves the
    producing thread CPU on every message (`benchmarks/bus.py`, produce on 4 partitions, CPU per message).

    Each producer has its own subclass (`_pending_type`) whose class attribute `producer` is that producer: a
    failure is described with its state (the reason it purged its queue), at no cost per message.
    """

    __slots__ = ()
    producer: ClassVar[KafkaProducer]

    def __call__(self, err: KafkaError | BusError | None, msg: Any) -> None:
        """Settle with the message's place, or its failure: `err` is librdkafka's error, or the `BusError` that
        `produce` itself raised (then `msg` is None)."""
        if err is None:
            # No done() check first: a future is cancelled rarely, and `try` costs nothing until it raises
            # (contextlib.suppress would cost a context manager per message).
            try:  # noqa: SIM105
                self.set_result(_new_delivery(Receipt, (msg.topic(), msg.partition(), msg.offset())))
            except asyncio.InvalidStateError:
                pass  # its caller cancelled it
        elif not self.done():
            self.set_exception(self.producer._failure(err, msg))


def _pending_type(producer: KafkaProducer) -> type[_PendingDelivery]:
    """The future type of `producer`'s messages."""
    return type("PendingDelivery", (_PendingDelivery,), {"__slots__": (), "producer": producer})


class _FromAnyThread:
    """A transactional producer's delivery handler: librdkafka serves reports on the thread of a blocking call
    (commit, abort), an executor thread; those are queued for the loop (`KafkaProducer._settle`), the loop's own
    are handled at once. A plain producer binds its handlers bare, as it never calls librdkafka off the loop."""

    __slots__ = ("_handler", "_producer")

    def __init__(self, producer: KafkaProducer, handler: Callable[..., None]) -> None:
        self._producer = producer
        self._handler = handler

    def __call__(self, *args: Any) -> None:
        producer = self._producer
        if producer._off_loop and get_ident() != producer._loop_thread:
            producer._reports.append((self._handler, args))
        else:
            self._handler(*args)


class KafkaProducer(Producer):
    """One librdkafka producer whose delivery reports are served on the event loop (module docstring); with a
    `transactional_id`, its writes and offset commits go in transactions."""

    def __init__(self, settings: KafkaSettings, transactional_id: str | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._where = f"Kafka {settings.bootstrap_servers}"
        conf: dict[str, Any] = {**settings.client_config(), **PRODUCER_DEFAULTS, **settings.producer_config}
        conf.update(settings.client_config_overrides)
        conf["error_cb"] = self._on_error
        if transactional_id is not None:
            conf["transactional.id"] = transactional_id
        self.transactional_id = transactional_id
        try:
            self._p = _Producer(conf)
        except KafkaException as e:
            raise ConfigError(f"{self._where}: invalid producer settings: {e}") from e
        self._produce = self._p.produce
        self._loop_thread = get_ident()
        # Transaction calls run in executor threads, where librdkafka serves delivery reports too: while any runs
        # (`_off_loop` counts them), a report checks its thread, and those served off the loop wait here.
        self._off_loop = 0
        self._reports: deque[tuple[Callable[..., None], tuple[Any, ...]]] = deque()
        self._pending = _pending_type(self)
        # The batch handlers, bound once: each batch's callback binds the batch (and an index) to one of them.
        self._batch_report: Callable[..., None] = self._on_batch_report
        self._batch_index: Callable[..., None] = self._on_batch_index
        if transactional_id is not None:
            self._batch_report = _FromAnyThread(self, self._on_batch_report)
            self._batch_index = _FromAnyThread(self, self._on_batch_index)
        self._overflow: deque[tuple[_Args, _Callback]] = deque()
        self._since_poll = 0
        self._timer: asyncio.TimerHandle | None = None
        """Armed exactly while `_idle` is clear: the first message after idleness arms it (`_arm`)."""
        self._idle = asyncio.Event()
        self._idle.set()
        self._fatal: BusError | None = None
        self._rejected: BusError | None = None
        self._purged: BusError | None = None
        self._closed = False
        self._txn_init = False
        self._txn: list[tuple[asyncio.Future[Receipt], asyncio.Future[Receipt]]] | None = None
        self._txn_doomed: BusError | None = None  # a write of the open transaction refused without a raise
        self._plain = transactional_id is None
        """Not transactional, not closed, no fatal error: `produce` checks this one flag (see `_replan`)."""

    def _replan(self) -> None:
        """Recompute `_plain` after closing or a fatal error."""
        self._plain = self.transactional_id is None and not self._closed and self._fatal is None

    @property
    def in_flight(self) -> int:
        """Messages not yet settled: librdkafka's queue (which also counts a client event, such as an error
        report, until the next poll serves it: at most `POLL_INTERVAL_S` while anything is in flight), the
        overflow, and reports served off the loop and not yet settled."""
        return len(self._p) + len(self._overflow) + len(self._reports)

    # ---- librdkafka callbacks: the loop thread (our polls), or an executor thread (transactions) ----

    def _on_error(self, err: KafkaError) -> None:
        """Client-level errors. Transient ones are logged; librdkafka keeps retrying them.

        A rejected identity fails what is queued now (see `_serve`) instead of letting it wait for the
        message timeout; later messages are tried again, so fixed credentials on the broker side recover.
        A fatal error (e.g. a fenced idempotent producer) fails everything from then on.
        """
        if err.fatal():
            self._fatal = translate(err, f"produce to {self._where}")
            self._replan()
            log.error("%s", self._fatal)
        elif is_auth_error(err):
            self._rejected = translate(err, f"produce to {self._where}")
            log.error("%s", self._rejected)
        else:
            log.warning("%s: %s", self._where, err.str())

    def _on_batch_report(self, batch: BatchOutcomes, err: KafkaError | BusError | None, msg: Any) -> None:
        """The delivery callback of every message of a `produce_many` batch: one callable per batch, not one per
        message (binding each message's index cost a bound method per message and a second call level per
        report). A success is only counted; a failure is attributed by content (`BatchOutcomes.fail_by_content`)."""
        if err is None:
            batch.remaining -= 1  # BatchOutcomes.count, inlined: this runs once per message
            if not batch.remaining and not batch.future.done():
                batch.future.set_result(batch.failures)
        else:
            batch.fail_by_content(msg.topic(), msg.key(), msg.value(), self._failure(err, msg))

    def _on_batch_index(self, batch: BatchOutcomes, index: int, err: KafkaError | BusError | None, msg: Any) -> None:
        """As `_on_batch_report`, for a message of the batch that left the fast path (a full queue, or `produce`
        raising): its index is bound, so its failure is attributed exactly."""
        batch.settle(index, None if err is None else self._failure(err, msg))

    def _failure(self, err: KafkaError | BusError, msg: Any) -> BusError:
        if isinstance(err, BusError):
            return err
        if self._purged is not None and err.code() in (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT):
            return self._purged
        return translate(err, f"produce to {msg.topic()} on {self._where}")

    # ---- event loop ----

    def _serve(self) -> None:
        """Serve delivery reports now (without blocking), then settle what they resolved."""
        self._since_poll = 0
        self._p.poll(0)
        reason = self._fatal or self._rejected
        if reason is not None:
            self._rejected = None
            self._purge(reason, in_flight=False)
            self._p.poll(0)
        self._settle()

    def _purge(self, reason: BusError, *, in_flight: bool) -> None:
        """Fail the messages librdkafka holds (queued; and sent but unacknowledged, with `in_flight`) with `reason`:
        their reports come at the next poll, with purge errors that `_failure` turns into `reason`."""
        self._purged = reason
        self._p.purge(in_queue=True, in_flight=in_flight)

    def _settle(self) -> None:
        """Settle reports served by other threads, refill librdkafka from the overflow, note idleness (and disarm
        the timer: nothing is left for it to serve)."""
        reports = self._reports
        while reports:
            handler, args = reports.popleft()
            handler(*args)
        if self._overflow:
            self._drain_overflow()
        if not self.in_flight:
            self._idle.set()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _arm(self) -> None:
        """Something is in flight from now on: `flush` waits, and the timer serves its delivery report."""
        self._idle.clear()
        self._timer = self._loop.call_later(POLL_INTERVAL_S, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self._serve()
        if not self._idle.is_set() and not self._closed:
            self._timer = self._loop.call_later(POLL_INTERVAL_S, self._tick)

    def _drain_overflow(self) -> None:
        overflow = self._overflow
        while overflow:
            args, callback = overflow[0]
            if not self._enqueue(args, callback):
                return
            overflow.popleft()

    def _enqueue(self, args: _Args, callback: _Callback) -> bool:
        """Hand one message to librdkafka; False when its queue is full (try again after deliveries).

        Arguments go positionally (topic, value, key, partition, on_delivery, callback, timestamp, headers):
        confluent-kafka parses keywords at about twice the cost (`benchmarks/bus.py`, produce).
        """
        topic, value, key, headers, partition = args
        hs: Any = headers  # list[tuple[str, bytes]] is what it takes; its stub's list type is invariant
        try:
            self._produce(topic, value, key, -1 if partition is None else partition, callback, None, 0, hs)
        except BufferError:
            return False
        except (KafkaException, TypeError, ValueError) as e:
            callback(translate(e, f"produce to {topic} on {self._where}"), None)
        return True

    def produce(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> asyncio.Future[Receipt]:
        fut = self._pending(loop=self._loop)
        if not self._plain:
            return self._produce_unplain(fut, (topic, value, key, headers, partition))
        if self._timer is None:
            self._arm()
        hs: Any = headers
        if self._overflow:
            self._overflow.append(((topic, value, key, headers, partition), fut))
        else:
            try:  # _enqueue, inlined: this runs once per message
                self._produce(topic, value, key, -1 if partition is None else partition, fut, None, 0, hs)
            except BufferError:
                self._overflow.append(((topic, value, key, headers, partition), fut))
            except (KafkaException, TypeError, ValueError) as e:
                fut(translate(e, f"produce to {topic} on {self._where}"), None)
        self._since_poll += 1
        if self._since_poll >= POLL_EVERY:
            self._serve()
        return fut

    def _produce_unplain(self, fut: _PendingDelivery, args: _Args) -> asyncio.Future[Receipt]:
        """`produce` of a closed producer (raises), after a fatal error (fails `fut`), or of a transactional one.

        A transactional producer's report may be served off the loop (`_FromAnyThread`). Inside a transaction the
        caller gets a second future that settles with the transaction (`fut` settles with the delivery), and a
        write refused at once is raised: it is not in the transaction, and the caller must know before it commits.
        """
        if self._closed:
            raise BusClosed(f"{self._where}: producer is closed")
        if self._fatal is not None:
            fut.set_exception(self._fatal)
            return fut
        if self._timer is None:
            self._arm()
        callback = _FromAnyThread(self, fut)
        result: asyncio.Future[Receipt] = fut
        if self._txn is not None:
            result = self._loop.create_future()
            self._txn.append((fut, result))
        if self._overflow or not self._enqueue(args, callback):
            self._overflow.append((args, callback))
        elif self._txn is not None and fut.done():  # refused at once (no report is served before a poll)
            self._txn.pop()
            refused = fut.exception()  # retrieved: raised instead
            assert refused is not None
            raise refused
        self._since_poll += 1
        if self._since_poll >= POLL_EVERY:
            self._serve()
        return result

    def produce_many(self, messages: Sequence[OutRecord]) -> Awaitable[Failures]:
        """One `BatchOutcomes` and one delivery callback for the batch: per message, only librdkafka's produce
        and its delivery report."""
        if self._closed:
            raise BusClosed(f"{self._where}: producer is closed")
        if self._txn is not None:
            return self._produce_many_in_transaction(messages)
        fut: asyncio.Future[Failures] = self._loop.create_future()
        batch = BatchOutcomes(fut, messages)
        if self._fatal is not None:
            for i in range(len(messages)):
                batch.settle(i, self._fatal)
            return fut
        if not messages:
            return fut
        if self._timer is None:
            self._arm()
        i = 0
        if not self._overflow:
            produce = self._produce
            report = MethodType(self._batch_report, batch)
            try:  # _enqueue, inlined: this runs once per message
                for i, (topic, value, key, headers, partition) in enumerate(messages):  # noqa: B007  # i: on raising
                    hs: Any = headers
                    produce(topic, value, key, -1 if partition is None else partition, report, None, 0, hs)
                i = len(messages)
            except (BufferError, KafkaException, TypeError, ValueError):
                pass  # message i goes the slow way, with the rest
        on_index = partial(self._batch_index, batch)
        for j in range(i, len(messages)):
            callback = MethodType(on_index, j)
            if self._overflow or not self._enqueue(messages[j], callback):
                self._overflow.append((messages[j], callback))
        self._since_poll += len(messages)
        if self._since_poll >= POLL_EVERY:
            self._serve()
        return fut

    def _produce_many_in_transaction(self, messages: Sequence[OutRecord]) -> Awaitable[Failures]:
        """Per-message futures whose outcomes follow the transaction. A message refused at once is reported by
        its index, as `produce_many` promises, and the transaction can then only abort: the rest of the batch
        is in it, that message is not."""
        futures: list[Awaitable[Receipt]] = []
        for topic, value, key, headers, partition in messages:
            try:
                futures.append(self.produce(topic, value, key=key, headers=headers, partition=partition))
            except BusError as e:
                self._txn_doomed = e
                refused: asyncio.Future[Receipt] = self._loop.create_future()
                refused.set_exception(e)
                futures.append(refused)
        return failures_of(futures)

    async def flush(self) -> None:
        await self._idle.wait()

    # ---- transactions ----

    async def _call(self, fn: Any, *args: Any) -> Any:
        """Run a blocking librdkafka transaction call on an executor thread. Reports it serves there are settled
        on the loop by `_worker_done`, which the worker schedules before its result is handed back: settled
        before this returns. A client error becomes a `TransactionError`."""
        self._off_loop += 1
        try:
            return await self._loop.run_in_executor(None, self._in_worker, fn, args)
        except KafkaException as e:
            err = e.args[0] if e.args and isinstance(e.args[0], KafkaError) else None
            retriable = bool(err and (err.retriable() or err.txn_requires_abort()))
            raise TransactionError(
                f"{self._where}: transaction ({self.transactional_id}): {e}", retriable=retriable
            ) from e

    def _in_worker(self, fn: Any, args: tuple[Any, ...]) -> Any:
        """`fn` on the executor thread. `_off_loop` drops only once it has returned, on the loop thread: a caller
        that stopped waiting (a timeout) must not let the still running call settle futures from its thread."""
        try:
            return fn(*args)
        finally:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is left to settle for
                self._loop.call_soon_threadsafe(self._worker_done)

    def _worker_done(self) -> None:
        self._off_loop -= 1
        self._settle()

    async def begin_transaction(self) -> None:
        if self._closed:
            raise BusClosed(f"{self._where}: producer is closed")
        if self.transactional_id is None:
            raise TransactionError(f"{self._where}: producer was created without a transactional_id")
        if self._txn is not None:
            raise TransactionError(f"{self._where}: a transaction is already in progress")
        if not self._txn_init:
            await self._call(self._p.init_transactions, TXN_TIMEOUT_S)
            self._txn_init = True
        await self.flush()
        self._p.begin_transaction()
        self._txn = []
        self._txn_doomed = None

    async def send_offsets_to_transaction(self, consumer: Consumer, offsets: Mapping[TopicPartition, int]) -> None:
        from algorun.bus.kafka.consumer import KafkaConsumer

        if self._txn is None:
            raise TransactionError(f"{self._where}: no transaction in progress")
        if not isinstance(consumer, KafkaConsumer):
            raise TransactionError(f"{self._where}: offsets need a KafkaConsumer")
        tps = [_TP(tp.topic, tp.partition, off) for tp, off in offsets.items()]
        await self._call(self._p.send_offsets_to_transaction, tps, consumer.group_metadata(), TXN_TIMEOUT_S)
        consumer._forget_stored(offsets)

    async def commit_transaction(self) -> None:
        if self._txn is None:
            raise TransactionError(f"{self._where}: no transaction in progress")
        pairs, self._txn = self._txn, None
        try:
            refused = self._txn_doomed or next(
                (e for inner, _ in pairs if inner.done() and not inner.cancelled() and (e := inner.exception())), None
            )
            self._txn_doomed = None
            if refused is not None:  # refused by the client, so librdkafka would commit the others without it
                raise TransactionError(f"{self._where}: a write of the transaction was refused: {refused}")
            await self._call(self._p.commit_transaction, TXN_TIMEOUT_S)
        except TransactionError as e:
            await self._abort_after_failure()
            _fail(pairs, e)
            raise
        await self.flush()
        for inner, outer in pairs:
            if inner.exception() is not None:
                outer.set_exception(inner.exception())  # type: ignore[arg-type]
            else:
                outer.set_result(inner.result())

    async def _abort_after_failure(self) -> None:
        try:
            await self._call(self._p.abort_transaction, TXN_TIMEOUT_S)
        except TransactionError as e:
            log.warning("%s", e)

    async def abort_transaction(self) -> None:
        if self._txn is None:
            raise TransactionError(f"{self._where}: no transaction in progress")
        pairs, self._txn = self._txn, None
        try:
            await self._call(self._p.abort_transaction, TXN_TIMEOUT_S)
        finally:
            _fail(pairs, TransactionError(f"{self._where}: transaction aborted"))
            await self.flush()

    async def close(self) -> None:
        """Drain: deliver (or fail) everything produced, then stop serving delivery reports.

        The drain waits on the loop while the timer serves reports: a blocking `flush` on an executor thread
        would serve them there, and a plain producer's reports must only run on the loop (`_FromAnyThread`).
        What is still unacknowledged after `DRAIN_TIMEOUT_S` (an unreachable broker) is purged from librdkafka
        and fails with `ProduceFailed`: every future settles, so no caller waits forever on a closed producer.
        Then the librdkafka client is closed.
        """
        if self._closed:
            return
        if self._txn is not None:
            await self.abort_transaction()
        err = ProduceFailed(f"{self._where}: producer closed before the broker acknowledged", retriable=True)
        settled = await self._drained(DRAIN_TIMEOUT_S)
        if not settled:
            overflow, self._overflow = self._overflow, deque()  # first: the purged queue must not be refilled
            for _, callback in overflow:
                callback(err, None)
            self._purge(err, in_flight=True)
            settled = await self._drained(PURGE_WAIT_S)  # the purge's reports are served by the timer
        self._closed = True
        self._replan()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._serve()
        if settled:
            # Release librdkafka's threads and connections now: the client is otherwise freed only by a pass of
            # the cyclic collector (this object and its future type refer to each other), which `tune_gc` makes
            # rare. Nothing is left for the client's closing flush to serve, so no report runs on that thread.
            await self._loop.run_in_executor(None, self._p.close)
        else:
            log.warning("%s: %d messages still unreported after the purge", self._where, self.in_flight)

    async def _drained(self, timeout_s: float) -> bool:
        """Wait until nothing is in flight; False if that took longer than `timeout_s`."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True


def _fail(pairs: list[tuple[asyncio.Future[Receipt], asyncio.Future[Receipt]]], err: BusError) -> None:
    for inner, outer in pairs:
        if not outer.done():
            outer.set_exception(err)
        if inner.done() and not inner.cancelled():
            inner.exception()  # consumed: the caller sees the transaction's error instead
        else:
            inner.add_done_callback(lambda f: f.cancelled() or f.exception())
