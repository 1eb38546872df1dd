"""The hook runner: consume the topics piped into `EventHook`, deliver each message to every matching webhook.

- Each webhook has its own queue of messages to deliver, worked by at most `concurrency` worker tasks, so a
  webhook that is down only delays itself. A delivery that must wait for a retry leaves the pool (it goes on in
  its own task, and a new worker takes its seat), so messages waiting for their next retry never hold a place
  that a deliverable message could use. Workers rather than a task per message: a task and a contended
  semaphore per delivery were a large share of a delivery's cost. Each webhook's `gate` still bounds the
  requests in flight, retries included.
- A delivery is retried with backoff and jitter (`algorun.webhook.delivery`), its budget counted from when the
  message was read; after it, the message goes to the dead-letter topic with the last error and the hook id
  in its headers.
- Each webhook has a circuit (`algorun.webhook.circuit`): after repeated failed requests it stops sending and
  probes the receiver now and then, so a receiver that is down is not hit by every retry of every message.
- A webhook's backlog (messages it still owes) is bounded by `max_backlog`: when full, the partitions of the
  topics that feed it are paused (never dropped, and the consumer keeps polling so it stays in its group);
  other inputs keep flowing.
- Offsets are stored as soon as every matching webhook delivered or dead-lettered a message and everything
  before it in the partition (`OffsetTracker`), and committed every `COMMIT_EVERY_S`: at-least-once,
  duplicates only after a crash or a rebalance (receivers deduplicate on `X-Algorun-Delivery-Id`).
All consumer calls happen in the one task that runs `run`, as the bus interface asks.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import aiohttp

from algorun.api.configs import HookConfig
from algorun.breaker import STATE_VALUE, State
from algorun.bus import contract
from algorun.bus.errors import BusError, MessageTooLarge
from algorun.bus.interface import Bus, Consumer, Producer
from algorun.bus.offsets import OffsetTracker, Ticket
from algorun.bus.types import Message, TopicPartition
from algorun.hooks.message import HookHeaders, trace_id
from algorun.hooks.metrics import HookMetrics
from algorun.hooks.settings import HookSettings, HookTarget
from algorun.telemetry.logs import TRACE_ID
from algorun.webhook.circuit import Circuit
from algorun.webhook.delivery import Attempt, Delivery, Outcome, Webhook

log = logging.getLogger(__name__)

FETCH_MAX = 500
COMMIT_EVERY_S = 0.5
DRAIN_S = 10.0
DEAD_LETTER_RETRY_MAX_S = 30.0
HOOK_ID_HEADER = "hookID"
HOOK_INPUT_HEADER = "hookInputName"
DEAD_LETTER_ERROR_TYPE = "WebhookDeliveryFailed"


_Job = tuple[Message, Ticket, float]
"""A message a webhook owes, its tracker ticket, and when it was read (`time.monotonic()`)."""


@dataclass(eq=False)
class _Seat:
    """A worker of a webhook's pool, and the job it is on. `pooled` turns False when its delivery leaves the
    pool to wait for a retry."""

    hook: _Hook
    job: _Job | None = None
    pooled: bool = True


_SEAT: contextvars.ContextVar[_Seat | None] = contextvars.ContextVar("algorun_hook_seat", default=None)
"""The seat of the worker running in this task (each task has its own context), read by the retry wait."""


@dataclass(eq=False)
class _Hook:
    """Runtime state of one webhook: its request gate, the messages it still owes, and its metric children
    (resolved once: a `labels()` lookup per message is a measurable share of a delivery's cost)."""

    target: HookTarget
    gate: asyncio.Semaphore
    topics: frozenset[str]
    metrics: HookMetrics
    circuit: Circuit | None = None
    owed: int = 0
    queue: deque[_Job] = field(default_factory=deque)
    seats: dict[asyncio.Task[None], _Seat] = field(default_factory=dict)
    tasks: dict[TopicPartition, set[asyncio.Task[None]]] = field(default_factory=dict)
    """Deliveries that left the pool to wait for a retry, by partition (cancelled when it is revoked)."""

    def __post_init__(self) -> None:
        name = self.target.id
        self.delivered = self.metrics.deliveries.labels(name)
        self.delivery_latency = self.metrics.delivery_latency.labels(name)
        self.backlog = self.metrics.backlog.labels(name)
        self.backlog.set(0)
        self.headers = HookHeaders(hook_id=name, input_name=self.target.input_name, configured=self.target.headers)
        self.metrics.circuit_state.labels(name).set(0)
        if self.circuit is not None:
            self.circuit.on_change = self._circuit_changed

    def _circuit_changed(self, old: State, new: State) -> None:
        name = self.target.id
        self.metrics.circuit_state.labels(name).set(STATE_VALUE[new])
        if new is State.OPEN:
            if old is State.CLOSED:
                self.metrics.circuit_opened.labels(name).inc()
                log.warning("webhook %s is failing: circuit open, probing it every few seconds", name)
        elif new is State.CLOSED:
            log.info("webhook %s answers again: circuit closed", name)


class HookRunner:
    def __init__(
        self,
        config: HookConfig,
        settings: HookSettings,
        bus: Bus,
        session: aiohttp.ClientSession,
        *,
        metrics: HookMetrics | None = None,
    ) -> None:
        self.config = config
        self.settings = settings
        self.bus = bus
        self.metrics = metrics or HookMetrics()
        self._request_latency = {t.id: self.metrics.request_latency.labels(t.id) for t in settings.targets}
        self.hooks: dict[str, _Hook] = {}
        self.by_topic: dict[str, list[_Hook]] = {}
        for target in settings.targets:
            topics = frozenset(config.inputs.get(target.input_name, []))
            circuit = Circuit(settings.circuit_fails, settings.circuit_open_s) if settings.circuit_fails else None
            hook = _Hook(target, asyncio.Semaphore(settings.concurrency), topics, self.metrics, circuit)
            self.hooks[target.id] = hook
            for topic in sorted(topics):
                self.by_topic.setdefault(topic, []).append(hook)
        self.delivery = Delivery(session, settings.policy, on_attempt=self._attempted, sleep=self._retry_wait)
        self.tracker = OffsetTracker()
        self._progress = asyncio.Event()
        self._producer: Producer | None = None
        self._consumer: Consumer | None = None
        self._paused: set[TopicPartition] = set()
        self._closing = False
        self.running = False

    @property
    def topics(self) -> list[str]:
        return sorted({t for topics in self.config.inputs.values() for t in topics})

    def unmatched_inputs(self) -> list[str]:
        """Hook inputs that have topics but no webhook (their messages are committed without delivery)."""
        wanted = {h.target.input_name for h in self.hooks.values()}
        return sorted(name for name, topics in self.config.inputs.items() if topics and name not in wanted)

    def not_ready_reason(self) -> str | None:
        """For `/ready`: None once the runner consumes (its consumer owns partitions, or there is nothing to
        consume), else why not."""
        if not self.running:
            return "not consuming yet"
        if self._consumer is not None and not self._consumer.assignment():
            return "no partitions assigned yet"
        return None

    # ---- delivery ----

    def _attempted(self, hook: Webhook, attempt: Attempt) -> None:
        self._request_latency[hook.name].observe(attempt.seconds)
        if not attempt.ok:
            reason = f"http_{attempt.status}" if attempt.status else "network"
            self.metrics.failures.labels(hook.name, reason).inc()

    def _spawn(self, hook: _Hook, msg: Message, ticket: Ticket, read_at: float) -> None:
        hook.queue.append((msg, ticket, read_at))
        hook.owed += 1
        if len(hook.seats) < self.settings.concurrency:
            self._start_worker(hook)

    def _start_worker(self, hook: _Hook) -> None:
        seat = _Seat(hook)
        task = asyncio.get_running_loop().create_task(self._work(seat))
        hook.seats[task] = seat
        task.add_done_callback(lambda t: self._worker_done(hook, t))

    def _worker_done(self, hook: _Hook, task: asyncio.Task[None]) -> None:
        """A worker that was cancelled (its partition revoked) leaves jobs queued: another takes its seat."""
        hook.seats.pop(task, None)
        if hook.queue and not self._closing and len(hook.seats) < self.settings.concurrency:
            self._start_worker(hook)

    async def _work(self, seat: _Seat) -> None:
        """Deliver the webhook's queued jobs one after another, until none is left or the current delivery
        left the pool to wait for a retry."""
        _SEAT.set(seat)
        hook = seat.hook
        while hook.queue and seat.pooled:
            seat.job = job = hook.queue.popleft()
            await self._deliver(hook, *job)
        seat.job = None

    async def _retry_wait(self, seconds: float) -> None:
        """The backoff of a delivery (`Delivery.sleep`): a pooled worker's delivery leaves the pool first, so
        its seat goes to the next queued message while it waits; its task is then cancelled with its partition
        like any retrying delivery, and one whose partition was revoked meanwhile stops here."""
        seat = _SEAT.get()
        task = asyncio.current_task()
        if seat is not None and seat.pooled and seat.job is not None and task is not None:
            seat.pooled = False
            hook = seat.hook
            hook.seats.pop(task, None)
            if hook.queue and len(hook.seats) < self.settings.concurrency:
                self._start_worker(hook)
            msg, ticket, _ = seat.job
            if not self.tracker.current(ticket):
                raise asyncio.CancelledError  # its new owner delivers it
            tasks = hook.tasks.setdefault(msg.tp, set())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.sleep(seconds)

    async def _deliver(self, hook: _Hook, msg: Message, ticket: Ticket, read_at: float) -> None:
        target = hook.target
        # Set directly, not through `trace_context`: this runs for every delivery, in its own task (so its own
        # context), and the generator-based context manager was a measurable share of a delivery's cost.
        token = TRACE_ID.set(trace_id(msg))
        try:
            try:
                headers = hook.headers.of(msg)
                outcome = await self.delivery.deliver(
                    target.webhook, msg.value, headers, since=read_at, gate=hook.gate, circuit=hook.circuit
                )
            except Exception as e:  # a bug here must dead-letter the message, not stall its partition
                log.exception("delivering %s to %s failed unexpectedly", msg.tp, target.id)
                outcome = Outcome(False, 0, None, f"internal error: {type(e).__name__}: {e}", 0.0)
            if outcome.delivered:
                hook.delivered.inc()
                hook.delivery_latency.observe(time.monotonic() - read_at)
            elif self.tracker.current(ticket):  # else its partition was revoked: the new owner delivers it
                log.warning("webhook %s gave up on %s@%d: %s", target.id, msg.tp, msg.offset, outcome.error)
                await self._dead_letter(target, msg, outcome)
            self.tracker.finish(ticket)
            self._store()
        finally:
            TRACE_ID.reset(token)
            hook.owed -= 1
            hook.backlog.set(hook.owed)
            self._progress.set()

    async def _dead_letter(self, target: HookTarget, msg: Message, outcome: Outcome) -> None:
        """Produce to the dead-letter topic until the broker acknowledges: the message is never lost, and its
        offset is not committed before. Transient errors are retried with backoff; a dead letter over the broker's
        size limit never will fit, so it is written once more without its value (`contract.value_omitted`) rather than
        stalling its partition's commits forever."""
        assert self._producer is not None
        headers = contract.dead_letter(
            msg.headers,
            trace_id=trace_id(msg),
            error=outcome.error or "delivery failed",
            error_type=DEAD_LETTER_ERROR_TYPE,
            source_topic=msg.topic,
            source_partition=msg.partition,
            source_offset=msg.offset,
            component=f"EventHook:{target.id}",
        )
        headers = contract.replace(headers, {HOOK_ID_HEADER: target.id, HOOK_INPUT_HEADER: target.input_name})
        value = msg.value
        delay = 0.5
        while True:
            try:
                await self._producer.send(self.config.dead_letter_topic, value, key=msg.key, headers=headers)
                self.metrics.dead_letters.labels(target.id).inc()
                return
            except MessageTooLarge as e:
                if not value:  # the key and headers alone are over the limit: no write of it can ever succeed
                    log.error(
                        "dead-lettering %s@%d for %s is impossible even without its value, giving up on it: %s",
                        msg.tp,
                        msg.offset,
                        target.id,
                        e,
                    )
                    return
                value, headers = b"", contract.value_omitted(headers, value)
                log.error(
                    "the dead letter of %s@%d for %s (%d bytes) is over the broker's size limit: written without "
                    "its value (%s)",
                    msg.tp,
                    msg.offset,
                    target.id,
                    len(msg.value),
                    e,
                )
            except BusError as e:
                log.error("dead-lettering %s@%d for %s failed, retrying: %s", msg.tp, msg.offset, target.id, e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, DEAD_LETTER_RETRY_MAX_S)

    # ---- consuming ----

    def _revoked(self, tps: list[TopicPartition]) -> None:
        """Partitions handed to another member: drop their deliveries (the new owner redelivers them)."""
        self.tracker.forget(tps)
        self._paused.difference_update(tps)
        gone = set(tps)
        for hook in self.hooks.values():
            kept = deque(job for job in hook.queue if job[0].tp not in gone)
            hook.owed -= len(hook.queue) - len(kept)
            hook.queue = kept
            for task, seat in list(hook.seats.items()):
                if seat.job is not None and seat.job[0].tp in gone:
                    task.cancel()
            for tp in tps:
                for task in hook.tasks.pop(tp, set()):
                    task.cancel()

    def _store(self) -> None:
        offsets = self.tracker.take_moved()
        if offsets and self._consumer is not None:
            self._consumer.store(offsets)

    async def _commit(self, consumer: Consumer) -> None:
        self._store()
        try:
            await consumer.commit()
        except BusError as e:
            log.warning("committing offsets failed (will retry with the next commit): %s", e)
        self.metrics.uncommitted.set(self.tracker.uncommitted)

    def _fetch_size(self) -> int:
        """Bounded by the smallest room among webhooks still reading, so none overshoots its backlog. Full webhooks
        do not count: their topics are paused, and the consumer keeps polling so it stays in its group."""
        free = [self.settings.max_backlog - h.owed for h in self.hooks.values() if h.owed < self.settings.max_backlog]
        return max(1, min([FETCH_MAX, *free]))

    def _apply_backpressure(self, consumer: Consumer) -> None:
        """Pause the partitions feeding a full webhook; resume them once it has room again."""
        full = {t for h in self.hooks.values() if h.owed >= self.settings.max_backlog for t in h.topics}
        assigned = consumer.assignment()
        pause = {tp for tp in assigned if tp.topic in full} - self._paused
        resume = {tp for tp in self._paused if tp.topic not in full and tp in assigned}
        if pause:
            log.info("backlog full (%d messages) for topics %s: pausing", self.settings.max_backlog, sorted(full))
            consumer.pause(pause)
            self._paused |= pause
        if resume:
            consumer.resume(resume)
            self._paused -= resume
        self._paused &= assigned

    def _dispatch(self, messages: Iterable[Message]) -> None:
        now = time.monotonic()
        for msg in messages:
            hooks = self.by_topic.get(msg.topic, [])
            ticket = self.tracker.owe(msg.tp, msg.offset, len(hooks))
            if ticket is None:
                continue  # a re-fetch of a message already owed
            for hook in hooks:
                self._spawn(hook, msg, ticket, now)
        for hook in self.hooks.values():  # once per batch: a gauge set per message costs a lock each
            hook.backlog.set(hook.owed)
        self._store()

    async def run(self, stop: asyncio.Event) -> None:
        """Consume and deliver until `stop` is set, then drain (see `_drain`) and leave the group."""
        for target in self.settings.targets:
            if target.webhook.secret is None:
                log.warning("webhook %s has no signing secret: its deliveries are not signed", target.id)
        if not self.topics:
            log.warning("no topics are piped into EventHook; nothing to do")
            self.running = True
            await stop.wait()
            self.running = False
            return
        for name in self.unmatched_inputs():
            log.warning('hook input "%s" has no webhook: its messages are committed without delivery', name)
        self._producer = self.bus.producer()
        consumer = self.bus.consumer(self.config.consumer_group, self.topics, on_revoke=self._revoked)
        self._consumer = consumer
        self.running = True
        last_commit = time.monotonic()
        committing: asyncio.Task[None] | None = None
        try:
            while not stop.is_set():
                self._apply_backpressure(consumer)
                try:
                    batch = await consumer.getmany(self._fetch_size(), COMMIT_EVERY_S)
                except BusError as e:  # authentication or fatal client errors: keep trying, /ready says so
                    log.error("consuming failed: %s", e)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(1.0):
                            await stop.wait()
                    continue
                self._dispatch(batch)
                # A commit runs beside the next fetches (one at a time): awaited here, its round trip to the
                # broker held every message that arrived meanwhile (`benchmarks/latency.py`, the hook hop).
                if committing is not None and committing.done():
                    committing.result()
                    committing = None
                if committing is None and time.monotonic() - last_commit >= COMMIT_EVERY_S:
                    committing = asyncio.ensure_future(self._commit(consumer))
                    last_commit = time.monotonic()
            if committing is not None:
                await committing
                committing = None
            await self._drain(consumer)
        finally:
            self.running = False
            self._closing = True
            tasks = [t for h in self.hooks.values() for ts in (h.tasks.values()) for t in ts]
            tasks += [t for h in self.hooks.values() for t in h.seats]
            for task in tasks:
                task.cancel()
            if committing is not None:
                tasks.append(committing)
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(BusError):
                await self._commit(consumer)
            await consumer.close()
            await self._producer.close()
            self._consumer = None

    async def _drain(self, consumer: Consumer) -> None:
        """Shutdown: give in-flight deliveries up to `DRAIN_S` to finish so their offsets can be committed; the
        rest is redelivered after the restart."""
        deadline = time.monotonic() + DRAIN_S
        while self.tracker.uncommitted and time.monotonic() < deadline:
            self._progress.clear()
            await self._commit(consumer)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, min(COMMIT_EVERY_S, deadline - time.monotonic()))):
                    await self._progress.wait()
