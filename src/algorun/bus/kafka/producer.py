"""Kafka producer: the plain (non-blocking) confluent-kafka producer, delivery reports bridged to asyncio.

confluent-kafka's asyncio producer cannot send headers, so this wraps `confluent_kafka.Producer`:
- `produce` enqueues into librdkafka immediately (call order is partition order) and returns a future;
- one poller thread serves delivery reports and hands them to the event loop in batches, one loop wake-up per
  batch rather than per message;
- a full librdkafka queue is backpressure: later messages wait, in order, in an overflow queue that drains as
  deliveries complete (callers bound their own backlog with `in_flight`).

Defaults favour not losing data: idempotence on (acks=all, ordered retries), `close()` drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka import Producer as _Producer
from confluent_kafka import TopicPartition as _TP

from algorun.bus.errors import BusClosed, BusError, ConfigError, ProduceFailed, TransactionError
from algorun.bus.interface import Consumer, Producer
from algorun.bus.kafka.errors import is_auth_error, translate
from algorun.bus.types import Delivery, Headers, TopicPartition

if TYPE_CHECKING:
    from algorun.bus.settings import KafkaSettings

log = logging.getLogger(__name__)

PRODUCER_DEFAULTS: dict[str, str | int | float | bool] = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 5,
    "queue.buffering.max.messages": 200_000,
    "topic.metadata.propagation.max.ms": 10_000,
    # Topics are created explicitly (as on the local log); a typo must fail, not create a topic.
    "allow.auto.create.topics": False,
}
TXN_TIMEOUT_S = 60.0
DRAIN_TIMEOUT_S = 60.0


class KafkaProducer(Producer):
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
        self._reports: deque[tuple[asyncio.Future[Delivery], KafkaError | None, Any]] = deque()
        self._overflow: deque[tuple[tuple[str, bytes, bytes | None, Headers | None, int | None], Any]] = deque()
        self._resolve_scheduled = False
        self._lock = threading.Lock()
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._fatal: BusError | None = None
        self._rejected: BusError | None = None
        self._purged: BusError | None = None
        self._closed = False
        self._txn_init = False
        self._txn: list[tuple[asyncio.Future[Delivery], asyncio.Future[Delivery]]] | None = None
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll_loop, name="algorun-kafka-producer", daemon=True)
        self._poller.start()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    # ---- threads: librdkafka callbacks ----

    def _on_error(self, err: KafkaError) -> None:
        """Client-level errors (poller thread). Transient ones are logged; librdkafka keeps retrying them.

        A rejected identity fails what is queued now (see `_poll_loop`) instead of letting it wait for the
        message timeout; later messages are tried again, so fixed credentials on the broker side recover.
        A fatal error (e.g. a fenced idempotent producer) fails everything from then on.
        """
        if err.fatal():
            self._fatal = translate(err, f"produce to {self._where}")
            log.error("%s", self._fatal)
        elif is_auth_error(err):
            self._rejected = translate(err, f"produce to {self._where}")
            log.error("%s", self._rejected)
        else:
            log.warning("%s: %s", self._where, err.str())

    def _on_delivery(self, fut: asyncio.Future[Delivery], err: KafkaError | None, msg: Any) -> None:
        self._reports.append((fut, err, msg))

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            self._p.poll(0.05)
            if self._rejected is not None or self._fatal is not None:
                self._purged = self._fatal or self._rejected
                self._rejected = None
                self._p.purge(in_queue=True, in_flight=False)
                self._p.poll(0)
            self._schedule_resolve()

    def _schedule_resolve(self) -> None:
        if self._reports and not self._resolve_scheduled:
            with self._lock:
                if self._resolve_scheduled:
                    return
                self._resolve_scheduled = True
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                self._loop.call_soon_threadsafe(self._resolve)

    # ---- event loop ----

    def _resolve(self) -> None:
        with self._lock:
            self._resolve_scheduled = False
        reports = self._reports
        done = 0
        while reports:
            fut, err, msg = reports.popleft()
            done += 1
            if fut.done():
                continue
            if err is None:
                fut.set_result(Delivery(msg.topic(), msg.partition(), msg.offset()))
            elif self._purged is not None and err.code() in (
                KafkaError._PURGE_QUEUE,
                KafkaError._PURGE_INFLIGHT,
            ):
                fut.set_exception(self._purged)
            else:
                fut.set_exception(translate(err, f"produce to {msg.topic()} on {self._where}"))
        self._in_flight -= done
        if self._overflow:
            self._drain_overflow()
        if self._in_flight == 0:
            self._idle.set()

    def _drain_overflow(self) -> None:
        while self._overflow:
            args, fut = self._overflow[0]
            if not self._enqueue(args, fut):
                return
            self._overflow.popleft()

    def _enqueue(self, args: tuple[str, bytes, bytes | None, Headers | None, int | None], fut: Any) -> bool:
        """Hand one message to librdkafka; False when its queue is full (try again after deliveries)."""
        topic, value, key, headers, partition = args
        hs: Any = headers
        try:
            if partition is None:
                self._p.produce(topic, value, key, headers=hs, on_delivery=functools.partial(self._on_delivery, fut))
            else:
                self._p.produce(
                    topic,
                    value,
                    key,
                    partition=partition,
                    headers=hs,
                    on_delivery=functools.partial(self._on_delivery, fut),
                )
        except BufferError:
            return False
        except (KafkaException, TypeError, ValueError) as e:
            self._in_flight -= 1
            fut.set_exception(translate(e, f"produce to {topic} on {self._where}"))
        return True

    def produce(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> asyncio.Future[Delivery]:
        if self._closed:
            raise BusClosed(f"{self._where}: producer is closed")
        fut: asyncio.Future[Delivery] = self._loop.create_future()
        if self._fatal is not None:
            fut.set_exception(self._fatal)
            return fut
        result = fut
        if self._txn is not None:
            result = self._loop.create_future()
            self._txn.append((fut, result))
        self._in_flight += 1
        self._idle.clear()
        args = (topic, value, key, headers, partition)
        if self._overflow or not self._enqueue(args, fut):
            self._overflow.append((args, fut))
        return result

    async def flush(self) -> None:
        await self._idle.wait()

    # ---- transactions ----

    async def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return await self._loop.run_in_executor(None, fn, *args)
        except KafkaException as e:
            err = e.args[0] if e.args and isinstance(e.args[0], KafkaError) else None
            retriable = bool(err and (err.retriable() or err.txn_requires_abort()))
            raise TransactionError(
                f"{self._where}: transaction ({self.transactional_id}): {e}", retriable=retriable
            ) from e
        finally:
            self._schedule_resolve()

    async def begin_transaction(self) -> None:
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
        """Drain: deliver (or fail) everything produced, then stop the poller."""
        if self._closed:
            return
        if self._txn is not None:
            await self.abort_transaction()
        try:
            async with asyncio.timeout(DRAIN_TIMEOUT_S):
                while self._overflow or self._in_flight:
                    await self._loop.run_in_executor(None, self._p.flush, 1.0)
                    self._schedule_resolve()
                    await asyncio.sleep(0)
        except TimeoutError:
            pass
        self._closed = True
        self._stop.set()
        await self._loop.run_in_executor(None, self._poller.join)
        self._resolve()
        err = ProduceFailed(f"{self._where}: producer closed before the broker acknowledged", retriable=True)
        for _, fut in self._overflow:
            if not fut.done():
                fut.set_exception(err)
        self._overflow.clear()


def _fail(pairs: list[tuple[asyncio.Future[Delivery], asyncio.Future[Delivery]]], err: BusError) -> None:
    for inner, outer in pairs:
        if not outer.done():
            outer.set_exception(err)
        if inner.done() and not inner.cancelled():
            inner.exception()  # consumed: the caller sees the transaction's error instead
        else:
            inner.add_done_callback(lambda f: f.cancelled() or f.exception())
