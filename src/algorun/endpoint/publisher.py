"""Publishing accepted messages: straight to Kafka, or through the write-ahead log, never "accepted then lost".

`publish` returns only once the message is durably stored: acknowledged by the broker, or committed to the
local write-ahead log (WAL). Otherwise it raises an `EndpointError` (429/503/413) and the client knows the
message was not taken. Per topic, the WAL mode (the pipeline's `producer.wal` settings) decides:

- `always`: every message is written to the WAL, answered, then forwarded to Kafka in order;
- `fallback` (default): messages go to Kafka; when a delivery fails (broker down), that message and every later
  one go to the WAL until the forwarder has emptied it, so the order of acceptance is kept;
- `disable`: Kafka only; a broker outage is a 503 with `Retry-After` (the circuit breaker answers at once
  instead of making every client wait for the delivery timeout).

Ordering: each accepted message gets a sequence number; the WAL is forwarded in that order, and the forwarder
never passes a message that is still on its way to Kafka directly (if that one fails, it is logged under its
own sequence number and forwarded first). The forwarder sends the key and headers it stored, so a forwarded
message is the one accepted. The forwarder is also the broker probe: once the WAL is empty, direct sending
resumes.

Refusals for good (too large, unknown topic, not authorised) are answers, not outages: they never count as breaker
failures. A message too large for the producer is refused with 413 before it is logged; a logged record the
broker refuses for good is moved to the log's dead-letter table, so it cannot block the records behind it.

The module is longer than most (about 500 lines): the direct path, the log path and the forwarder are one
`Publisher` because they share the sequence numbers, the breaker and the producer, and that sharing is what
keeps the order of acceptance.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from algorun.api.enums import WalMode
from algorun.breaker import STATE_VALUE, CircuitBreaker, State
from algorun.bus.errors import AuthenticationFailed, BusError, MessageTooLarge, NotAuthorized, UnknownTopic
from algorun.bus.interface import Producer
from algorun.bus.kafka.record_size import KAFKA_MESSAGE_MAX_BYTES, kafka_record_size
from algorun.endpoint import errors
from algorun.endpoint.errors import Code, EndpointError
from algorun.endpoint.ingest import Outgoing
from algorun.endpoint.metrics import EndpointMetrics
from algorun.endpoint.wal import LogError, Record, WriteAheadLog, record_size

log = logging.getLogger(__name__)

FORWARD_BATCH = 500
BACKOFF_START_S = 0.2
BACKOFF_MAX_S = 5.0
FORWARDER_STOP_S = 15.0

TOO_LARGE_HINT = " (the producer's message.max.bytes, counting the key, the headers and the record framing)"
PERMANENT_REFUSALS = (MessageTooLarge, UnknownTopic, NotAuthorized)
"""Refusals that sending the same record again cannot change. Not `AuthenticationFailed`: that is about the
producer's identity, not the record, and a credentials rotation (SIGHUP) fixes it for every record at once."""
BROKER_ANSWERS = (UnknownTopic, NotAuthorized, AuthenticationFailed)
"""Refusals only the broker itself gives, so they prove it is reachable (the breaker counts them as successes).
Not `MessageTooLarge`: librdkafka refuses an oversized record at produce time without asking the broker."""


class Accepted(NamedTuple):
    """Where an accepted message is: `stored` is "broker" (with partition and offset) or "log"."""

    topic: str
    partition: int | None
    offset: int | None
    stored: str


@dataclass(frozen=True)
class WalPolicy:
    """The effective WAL mode of each topic (`always_topics` and `disable_topics` override the global mode)."""

    mode: WalMode = WalMode.FALLBACK
    always_topics: frozenset[str] = field(default_factory=frozenset)
    disable_topics: frozenset[str] = field(default_factory=frozenset)

    def mode_for(self, topic: str) -> WalMode:
        if topic in self.always_topics:
            return WalMode.ALWAYS
        if topic in self.disable_topics:
            return WalMode.DISABLE
        return self.mode

    def needs_log(self, topics: Iterable[str]) -> bool:
        return any(self.mode_for(t) is not WalMode.DISABLE for t in topics)


@dataclass(frozen=True)
class Limits:
    """Admission control: beyond these, requests get 429 (the endpoint never buffers without bound)."""

    max_in_flight: int = 20_000
    max_in_flight_bytes: int = 256 * 1024 * 1024


class Publisher:
    def __init__(
        self,
        producer: Producer,
        *,
        wal: WriteAheadLog | None,
        policy: WalPolicy,
        breaker: CircuitBreaker,
        limits: Limits,
        metrics: EndpointMetrics,
        resend_rate: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_message_bytes: int = KAFKA_MESSAGE_MAX_BYTES,
    ) -> None:
        """`max_message_bytes`: the producer's effective `message.max.bytes`; larger messages get 413 before they
        reach the log (the direct path gets the same 413 from librdkafka itself)."""
        self.producer = producer
        self.wal = wal
        self.policy = policy
        self.breaker = breaker
        self.limits = limits
        self.metrics = metrics
        self.resend_rate = resend_rate
        self.clock = clock
        self._seq = 0
        self._direct: dict[int, None] = {}  # sequence numbers on their way to Kafka, in order
        self.diverting = False
        self.in_flight = 0
        self.in_flight_bytes = 0
        self.max_message_bytes = max_message_bytes
        self.last_forward_error: str | None = None
        self.forward_failure: str | None = None
        """Set while the forwarder cannot work the log itself (a read or delete failed): readiness reports it."""
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()  # something finished: lets close() wait without polling
        self._forwarder: asyncio.Task[None] | None = None
        self._closing = False
        self._stopping = asyncio.Event()  # tells the forwarder to return
        self._swapped: asyncio.Event | None = None  # set while `swap_producer` waits for the old producer to drain
        self._swapping = asyncio.Lock()
        metrics.in_flight = lambda: self.in_flight  # read at scrape time, not set per message
        # Read at scrape time too: the breaker also changes state on a probe's success and on going half-open.
        metrics.breaker_state.set_function(lambda: STATE_VALUE[self.breaker.state])
        metrics.wal_dead_letters.set_function(lambda: self.wal.dead_count if self.wal is not None else 0)

    # ---- lifecycle ----

    async def start(self) -> None:
        if self.wal is not None:
            await self.wal.open()
            self._seq = self.wal.last_seq
            self.diverting = self.wal.count > 0
            self._update_wal_gauges()
            if self.wal.count:
                log.info("write-ahead log holds %d messages from before; forwarding them first", self.wal.count)
            self._forwarder = asyncio.get_running_loop().create_task(self._forward_loop(), name="wal-forwarder")

    async def close(self, drain_timeout: float = 10.0) -> None:
        """Stop accepting; wait for in-flight publishes; give the forwarder a moment to empty the log.

        The forwarder is stopped with a flag, not by cancelling it: on Python 3.11 `asyncio.wait_for` swallows a
        cancellation that arrives while its inner wait completes (cpython gh-86296), which left close() awaiting
        a forwarder that never stopped. Waits here use `asyncio.timeout`, which does not have that defect.
        """
        self._closing = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain_timeout
        # What is still in the log after the deadline stays there (it is durable) and is forwarded at the next start.
        while self.in_flight or (self.wal is not None and self.wal.count and self.last_forward_error is None):
            self._progress.clear()
            if loop.time() >= deadline:
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await self._progress.wait()
        self._stopping.set()
        self._wake.set()
        await self._stop_forwarder()
        if self.wal is not None:
            try:
                await self.wal.close()
            except LogError as e:  # what it held is on disk already; the producer must still be closed after us
                log.error("closing the write-ahead log failed: %s", e)

    async def _stop_forwarder(self) -> None:
        """Wait for the forwarder to return, cancelling it if stuck. Never raises: the caller still has to close the
        log, and the service the producer, whatever the forwarder raised."""
        task = self._forwarder
        if task is None:
            return
        try:
            async with asyncio.timeout(FORWARDER_STOP_S):
                await asyncio.shield(task)
        except TimeoutError:
            # Stuck in a produce or a log read: cancel it; the log keeps whatever was not acknowledged.
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        except Exception:
            log.exception("the write-ahead log forwarder had failed")

    # ---- publishing ----

    def _admit(self, size: int) -> None:
        if self._closing:
            raise EndpointError(503, Code.BROKER_UNAVAILABLE, "the endpoint is shutting down; retry", retry_after=1)
        if self.in_flight >= self.limits.max_in_flight:
            self.metrics.rejected.labels("in_flight").inc()
            raise errors.overloaded(f"{self.in_flight} messages awaiting acknowledgement")
        if self.in_flight_bytes + size > self.limits.max_in_flight_bytes and self.in_flight:
            self.metrics.rejected.labels("in_flight_bytes").inc()
            raise errors.overloaded(f"{self.in_flight_bytes} bytes awaiting acknowledgement")

    async def publish(self, msg: Outgoing) -> Accepted:
        """Store one message durably (broker or WAL) or raise an `EndpointError`; never accept and then drop.

        The direct path is written out in this one coroutine (no inner `_publish`): every coroutine between a
        request handler and the delivery future is passed through twice per request (suspend and resume), and
        under load that showed as a few percent of the endpoint's CPU.
        """
        size = record_size(msg.key, msg.value, msg.headers)
        self._admit(size)
        self.in_flight += 1
        self.in_flight_bytes += size
        self._seq += 1
        seq = self._seq
        probe = False  # took one of a half-open breaker's probe slots: must settle it whatever happens
        try:
            mode = self.policy.mode_for(msg.topic) if self.wal is not None else WalMode.DISABLE
            if mode is WalMode.ALWAYS or (mode is WalMode.FALLBACK and self.diverting):
                return await self._to_log(seq, msg, size)
            if mode is WalMode.DISABLE:
                if not self.breaker.allow(self.clock()):
                    raise errors.broker_unavailable(
                        f"circuit breaker open after {self.breaker.consecutive_failures} failed deliveries",
                        self.breaker.retry_after(self.clock()),
                    )
                probe = self.breaker.state is State.HALF_OPEN
            if self._swapped is not None:
                await self._swapped.wait()  # after everything the old producer sent: keeps per-key order
            fallback = mode is WalMode.FALLBACK
            if fallback:
                self._direct[seq] = None
            try:
                delivery = await self.producer.produce(msg.topic, msg.value, key=msg.key, headers=msg.headers)
            except BusError as e:
                # Still listed in `_direct` while it goes to the log: the forwarder must not pass it meanwhile.
                return await self._undelivered(e, seq, msg, size, fallback, probe)
            finally:
                if fallback:
                    del self._direct[seq]
                    self._wake.set()
            self.breaker.success()
            self.metrics.acknowledged(msg.topic)
            return Accepted(delivery.topic, delivery.partition, delivery.offset, "broker")
        except asyncio.CancelledError:
            if probe:  # the client went away: no answer will settle this probe, so another may take its slot
                self.breaker.release()
            raise
        finally:
            self.in_flight -= 1
            self.in_flight_bytes -= size
            if self._closing:  # only close() waits for progress, and it sets _closing before waiting
                self._progress.set()

    async def publish_many(self, msgs: list[Outgoing]) -> list[Accepted]:
        """Publish in order (all are enqueued before any is awaited, so they keep their order in Kafka)."""
        tasks = [asyncio.ensure_future(self.publish(m)) for m in msgs]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return [r for r in results if isinstance(r, Accepted)]

    async def _undelivered(
        self, e: BusError, seq: int, msg: Outgoing, size: int, fallback: bool, probe: bool
    ) -> Accepted:
        """A failed delivery: 413 or 503 to the client, or (`fallback`) the message goes to the log instead."""
        self.metrics.broker_errors.labels(msg.topic, type(e).__name__).inc()
        if not e.retriable:
            self._refused(e, probe)
            if isinstance(e, MessageTooLarge):
                raise EndpointError(
                    413, Code.TOO_LARGE, f"the broker refused the message as too large ({len(msg.value)} bytes)"
                ) from e
            raise EndpointError(
                503, Code.REJECTED_BY_BROKER, f"the broker refused the message: {e}", retry_after=30
            ) from e
        self.breaker.failure(self.clock())
        if not fallback:
            raise errors.broker_unavailable(str(e), self.breaker.retry_after(self.clock())) from e
        log.warning("delivery to %s failed (%s); writing to the write-ahead log", msg.topic, e)
        self.diverting = True
        return await self._to_log(seq, msg, size)

    def _refused(self, e: BusError, probe: bool) -> None:
        """Settle the breaker for a refusal for good: an answer, never a failure. One only the broker gives shows it
        is up (a success); one librdkafka may give by itself (too large) shows nothing, so a probe gives its slot
        back: a half-open breaker whose probe is never settled would refuse every later request with 503 while /ready
        said ready."""
        if isinstance(e, BROKER_ANSWERS):
            self.breaker.success()
        elif probe:
            self.breaker.release()

    def _refuse_oversized(self, msg: Outgoing) -> None:
        """413 for a message the producer will never send: logged, it would be answered 202 and then stay first in
        the log for good. The direct path gets the same 413 from librdkafka at produce time."""
        size = kafka_record_size(msg.key, msg.value, msg.headers)
        if size > self.max_message_bytes:
            self.metrics.rejected.labels("too_large").inc()
            raise errors.too_large(size, self.max_message_bytes, TOO_LARGE_HINT)

    async def _to_log(self, seq: int, msg: Outgoing, size: int) -> Accepted:
        assert self.wal is not None
        self._refuse_oversized(msg)
        if self.wal.full(size):
            self.metrics.rejected.labels("log_full").inc()
            raise EndpointError(
                503,
                Code.LOG_FULL,
                f"the write-ahead log is full ({self.wal.describe_fill()}); retry later",
                retry_after=self.breaker.retry_after(self.clock()),
            )
        try:
            await self.wal.append(seq, msg.topic, msg.key, msg.value, msg.headers, int(time.time() * 1000))
        except LogError as e:
            log.error("%s", e)
            raise EndpointError(503, Code.LOG_FULL, f"the write-ahead log failed: {e}", retry_after=5) from e
        self.metrics.wal_writes.labels(msg.topic).inc()
        self._update_wal_gauges()
        self._wake.set()
        return Accepted(msg.topic, None, None, "log")

    # ---- forwarding ----

    def _update_wal_gauges(self) -> None:
        if self.wal is not None:
            self.metrics.wal_messages.set(self.wal.count)
            self.metrics.wal_bytes.set(self.wal.bytes)

    def _below(self) -> int | None:
        """Forward only what precedes the oldest message still on its way to Kafka directly."""
        return next(iter(self._direct), None)

    def forwarding_problem(self) -> str | None:
        """Why the log cannot be forwarded now (None: it can, or there is no log), for readiness: an endpoint whose
        log takes messages that nothing hands on must not look ready. A broker outage is not such a problem:
        riding it out is what the log is for."""
        task = self._forwarder
        if self.wal is None or task is None:
            return None
        if task.done() and not self._stopping.is_set():
            return "the write-ahead log forwarder has stopped"
        if self.forward_failure is not None:
            return f"the write-ahead log cannot be forwarded ({self.forward_failure})"
        return None

    async def _forward_loop(self) -> None:
        """Forward the log until `close()`. Nothing else ends it: a failed read or delete (disk full, I/O error) or
        an unexpected error is logged, shown by `forwarding_problem` and retried after a back-off: the endpoint
        answers 202 from the log, so the forwarder must not end while it does."""
        backoff = BACKOFF_START_S
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                progressed = await self._forward_step()
            except Exception as e:
                progressed = False
                self._forwarder_failed(e, backoff)
            else:
                self.forward_failure = None
            if progressed:
                backoff = BACKOFF_START_S
            else:
                await self._back_off(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _forward_step(self) -> bool:
        """Forward one batch, or wait for records. False: deliveries failed (the broker is down), so back off."""
        wal = self.wal
        assert wal is not None
        batch = await wal.read(0, self._below(), FORWARD_BATCH) if wal.count else []
        if not batch:
            if self.diverting and wal.count == 0 and wal.appending == 0:
                self.diverting = False
                log.info("write-ahead log is empty; sending to the broker directly again")
            await self._idle(1.0)
            return True
        acknowledged, failed = await self._forward(batch)
        if failed:
            self.breaker.trip(self.clock())
            return False
        if acknowledged:  # records refused for good say nothing about the broker being up
            self.breaker.recovered()
        return True

    def _forwarder_failed(self, e: Exception, backoff: float) -> None:
        """Record and log an error of the log itself (or a bug); the loop retries after `backoff` seconds."""
        self.forward_failure = self.last_forward_error = f"{type(e).__name__}: {e}"
        if isinstance(e, LogError):
            log.error("forwarding the write-ahead log failed; retrying in %.1f s: %s", backoff, e)
        else:
            log.exception("forwarding the write-ahead log failed unexpectedly; retrying in %.1f s", backoff)
        self._progress.set()  # close() stops waiting for a log that cannot drain now

    async def _back_off(self, seconds: float) -> None:
        """Wait `seconds`; only stopping cuts it short (new records must not make a failing forwarder spin)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()

    async def _idle(self, seconds: float) -> None:
        """Wait until woken (new log records, a direct send finished, stop) or `seconds` passed."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    async def swap_producer(self, new: Producer) -> Producer:
        """Send through `new` from now on and return the old producer, once everything it was given is acknowledged
        or failed (so no message overtakes an earlier one of its key). Publishes wait meanwhile: a client sees a
        pause as long as the old producer's last round trip (at most the delivery timeout while the broker is down),
        never a reordering. Swaps asked for at once run one after another, each replacing the one before."""
        async with self._swapping:
            old = self.producer
            gate = self._swapped = asyncio.Event()
            try:
                await old.flush()
            finally:
                self.producer = new
                self._swapped = None
                gate.set()
            return old

    async def _forward(self, batch: list[Record]) -> tuple[int, int]:
        """Send `batch` to Kafka in order with its key and headers; delete what was acknowledged and move what was
        refused for good to the dead-letter table. Returns (acknowledged, failed and to be sent again)."""
        assert self.wal is not None
        if self._swapped is not None:
            await self._swapped.wait()
        started = time.monotonic()
        futures = [self.producer.produce(r.topic, r.value, key=r.key, headers=r.headers) for r in batch]
        results = await asyncio.gather(*futures, return_exceptions=True)
        done: list[Record] = []
        refused: list[tuple[Record, BusError]] = []
        errs: list[BaseException] = []
        for r, res in zip(batch, results, strict=True):
            if not isinstance(res, BaseException):
                done.append(r)
            elif isinstance(res, PERMANENT_REFUSALS):
                refused.append((r, res))
            else:
                errs.append(res)
        for r in done:
            self.metrics.wal_forwarded.labels(r.topic).inc()
            self.metrics.acknowledged(r.topic)
        await self.wal.delete(done)
        await self._dead_letter(refused)
        self._update_wal_gauges()
        self._progress.set()
        if errs:
            self.last_forward_error = str(errs[0])
            level = logging.WARNING if isinstance(errs[0], BusError) and errs[0].retriable else logging.ERROR
            log.log(level, "forwarding %d logged messages failed, will retry: %s", len(errs), errs[0])
        else:
            self.last_forward_error = None
        if self.resend_rate and done:
            # Pace replay to `rate_limit` messages per second (the original's producer.resend.rate_limit).
            await asyncio.sleep(max(0.0, len(done) / self.resend_rate - (time.monotonic() - started)))
        return len(done), len(errs)

    async def _dead_letter(self, refused: list[tuple[Record, BusError]]) -> None:
        """Move records the broker refused for good out of the queue: first in the log, they blocked the records
        behind them and tripped the breaker forever. Kept in the dead-letter table rather than deleted: each was
        answered 202, so the operator decides whether to fix the cause and replay them, or drop them."""
        if not refused:
            return
        assert self.wal is not None
        await self.wal.dead_letter([(r, str(e)) for r, e in refused], int(time.time() * 1000))
        for r, e in refused:
            self.metrics.broker_errors.labels(r.topic, type(e).__name__).inc()
        topics = ", ".join(sorted({r.topic for r, _ in refused}))
        log.error(
            "the broker refused %d logged messages for good (topics %s; sequence numbers %d-%d); moved them to the "
            "dead_letter table of %s: %s",
            len(refused),
            topics,
            refused[0][0].seq,
            refused[-1][0].seq,
            self.wal.path,
            refused[0][1],
        )
