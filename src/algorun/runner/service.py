"""The runner's main loop: consume, hand each run to the executor, produce, commit what is finished.

Concurrency: messages are dispatched to *lanes* (a partition, or a key within a partition with
`key_concurrency`); a lane runs its messages one after another in read order, lanes run concurrently up to
`concurrency` runs at once. A lane does not wait for the broker: it enqueues the outputs (so their order is the
run order) and moves on; the message is finished when every write it caused is acknowledged. Only then can its
offset be committed, and only as part of the contiguous finished prefix (`delivery.OffsetTracker`).

Per-message cost is what limits throughput when the algo is fast, so the common case takes a short path: with
an executor that never waits (a sync python function), a message whose lane is idle is run inline while the
fetched batch is dispatched (no task, coroutine or semaphore per message), the writes of those runs go to the
producer in one `produce_many` per fetched batch, and the outcomes are collected by one sweep over the
unacknowledged batches (in produce order) instead of a future and a callback per write.
Anything unusual (staged parts, claim checks, retry copies, a failure) takes the general path in the lane.

Failures go through `retry.plan`: in place (Simple: only that lane waits), to the step's retry topic
(RetryTopics: a copy of every part, then the offset moves on; the runner's own consumer of the retry topics waits
until a copy is due), or to the dead-letter topic. A write that fails is written again until it is acknowledged:
nothing is committed past it, so nothing is lost. With `exactly_once`, each fetched batch is processed inside a
Kafka transaction that also carries the consumer offsets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import NamedTuple

from algorun.api.configs import RunnerConfig, RunnerInput, RunnerOutput
from algorun.api.enums import MessageDataType
from algorun.bus import contract
from algorun.bus.batch import Failures
from algorun.bus.errors import BusError, MessageTooLarge
from algorun.bus.interface import Bus, Consumer, Producer
from algorun.bus.types import Delivery, Headers, Message, OutRecord, TopicPartition
from algorun.runner import retry as retry_routing
from algorun.runner.config import RunnerOptions
from algorun.runner.delivery import OffsetTracker, lane_key
from algorun.runner.executors.base import Executor
from algorun.runner.metrics import RunnerMetrics
from algorun.runner.model import AlgoFailure, AlgoUnavailable, Output, Part, Request
from algorun.runner.payloads import ClaimCheck, FileReference, claim_check_from_env
from algorun.runner.routing import Inbound, dead_letter_headers, read_inbound, retry_headers
from algorun.runner.staging import Staged, Staging
from algorun.telemetry import Readiness
from algorun.telemetry.logs import TRACE_ID as trace_var
from algorun.telemetry.logs import TraceSlot

log = logging.getLogger(__name__)

REPRODUCE_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)
TRANSACTION_RETRY_S = 1.0
"""The wait before a batch whose transaction aborted is read again."""
READY_POLL_S = 0.5
LAG_INTERVAL_S = 15.0


@dataclass(slots=True)
class _Source:
    """What a consumed topic feeds: the input, its retry plan, the declared data type.

    `read`/`read_bytes`/`ok` count the inline path's messages until `Runner._flush_inline_counts` adds them to the
    metrics once per fetched batch (three metric calls per message were a tenth of that path's cost)."""

    input: RunnerInput
    plan: retry_routing.Plan
    file_reference: bool
    read: int = 0
    read_bytes: int = 0
    ok: int = 0


_GO_TRUE = frozenset({b"1", b"t", b"T", b"TRUE", b"true", b"True"})  # contract.parse_run, on raw bytes
_FILE_REFERENCE = contract.MessageDataType.FILE_REFERENCE.value.encode()
_EMBEDDED = contract.MessageDataType.EMBEDDED
_MESSAGE_DATA_TYPE, _RUN, _TRACE_ID = contract.MESSAGE_DATA_TYPE, contract.RUN, contract.TRACE_ID
_CONTENT_TYPE, _TRACEPARENT = contract.CONTENT_TYPE, contract.TRACEPARENT
_NOT_INHERITED = contract.NOT_INHERITED
_monotonic = time.monotonic


@dataclass(slots=True)
class _Queued:
    """A message waiting in its lane; `carried` when the inline path already ran it (see `_Carried`)."""

    message: Message
    tp: TopicPartition
    carried: _Carried | None = None


class _Ran(NamedTuple):
    """The inline path ran the algo and it succeeded, but an output is over the claim check's threshold: the
    general path uploads it (asynchronously) and writes the reference, without running the algo again."""

    outputs: list[Output]


class _Abandoned(Exception):
    """Stopping ended a lane's wait; its message is left unfinished (see `Runner._drain`)."""


_Carried = AlgoFailure | _Ran
"""What the inline path hands the general path: the failure of the run it made (retry plan from there), or
its outputs."""


@dataclass(slots=True)
class _Lane:
    queue: deque[_Queued] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None
    ready: bool = False  # waiting in Runner._ready for a task


class _Write(NamedTuple):
    """One message a run writes: where, what, and what its acknowledgement counts in the metrics.

    A NamedTuple: the inline path builds one per message with `tuple.__new__` (in C; a slotted dataclass's
    Python `__init__` cost three times as much)."""

    topic: str
    value: bytes
    key: bytes
    headers: Headers
    output: str
    data_size: int
    status: str


_new_write = tuple.__new__


class _Unacked:
    """Writes of one or more runs, handed to the producer in one `produce_many` and waiting for its outcomes.

    One batch per dispatched fetch on the inline path (every run the batch finished inline), else one per run:
    the producer settles a batch with one future instead of one per write. `records` is what the producer got, in
    run order, in two segments:
    - the *usual* runs first (`usual`, `usual_started`): one message each, its one write to the runner's first
      output, nothing else to remember (the inline path appends them without building a `_Write`);
    - then the other runs: `runs` holds each run's messages, start time and how many of `writes` (consecutive, in
      run order, one per record after the usual ones) are its own. Once one is added, later runs go here too, so
      the records stay in run order."""

    __slots__ = ("future", "records", "runs", "usual", "usual_bytes", "usual_started", "writes")

    def __init__(self) -> None:
        self.records: list[OutRecord] = []
        self.usual: list[Message] = []
        self.usual_started: list[float] = []
        self.usual_bytes = 0
        self.runs: list[tuple[list[Message], float, int]] = []
        self.writes: list[_Write] = []
        self.future: asyncio.Future[Failures] | None = None

    def add(self, messages: list[Message], started: float, writes: list[_Write]) -> None:
        self.runs.append((messages, started, len(writes)))
        self.writes.extend(writes)
        self.records.extend(_records(writes))


def _records(writes: list[_Write]) -> list[OutRecord]:
    return [(w.topic, w.value, w.key, w.headers, None) for w in writes]


class Runner:
    """One algo instance's runner. `await run(stop)` returns after a drained shutdown once `stop` is set."""

    def __init__(
        self,
        config: RunnerConfig,
        options: RunnerOptions,
        bus: Bus,
        executor: Executor,
        *,
        claim_check: ClaimCheck | None = None,
        metrics: RunnerMetrics | None = None,
    ) -> None:
        self.config = config
        self.options = options
        self.bus = bus
        self.executor = executor
        self.claim_check: ClaimCheck = claim_check or claim_check_from_env(config)
        self._offload_above = self.claim_check.offload_above
        # The inline path's one comparison per output: without storage, no size sends it to the general path.
        self._inline_limit = self._offload_above if self._offload_above is not None else sys.maxsize
        self.metrics = metrics or RunnerMetrics(config)
        self.readiness = Readiness()
        self.readiness.add("algo", lambda: self._algo_reason)
        self.readiness.add("consumer", self._consumer_reason)
        self._algo_reason: str | None = "not checked yet"
        self._component = config.full_name
        self._retry_topics = frozenset(config.retry.retry_topics.values())
        self._sources: dict[str, _Source] = {}
        self._algo_seconds: list[float] = []  # the inline path's algo durations, observed per batch
        for algo_input in config.inputs:
            for t in algo_input.topics:
                self._sources[t.topic] = _Source(
                    algo_input,
                    retry_routing.plan(config.retry.enabled, config.retry.strategy, t.retry_strategy),
                    t.message_data_type == MessageDataType.FILE_REFERENCE,
                )
        self._outputs: dict[str, RunnerOutput] = {o.name: o for o in config.outputs}
        self.topics = sorted({*self._sources, *self._retry_topics})
        self.tracker = OffsetTracker()
        self.staging = Staging()
        self._lanes: dict[Hashable, _Lane] = {}
        self._ready: deque[Hashable] = deque()  # lanes with messages, waiting for a task
        self._active = 0  # lane tasks not sleeping (a backoff or a retry copy's due time)
        self._queued: dict[TopicPartition, int] = {}
        self._paused: set[TopicPartition] = set()
        self._sem = asyncio.Semaphore(options.concurrency)
        self._writing = 0  # messages whose writes are not all acknowledged yet
        self._idle = asyncio.Event()
        self._idle.set()
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._stop_waiting = asyncio.Event()  # set when stopping: lanes waiting out a backoff give up
        self._eos = options.exactly_once
        self._doomed: BusError | None = None  # a write refused inside the open transaction: it must abort
        self._unacked: deque[_Unacked] = deque()  # in produce order
        self._collecting: _Unacked | None = None  # the inline runs' writes of the batch being dispatched
        self._sweep_armed = False
        self._inline: Callable[[Request], list[Output]] | None = None  # set once the executor started
        self._payload_run: Callable[[bytes], bytes | list[Output]] | None = None  # the same, payload only
        first = config.outputs[0] if config.outputs else None
        self._first_output = first if first is not None and first.topic is not None else None
        self._first_content_type = (  # what `contract.output` encodes per message for the usual one, once
            first.content_type.encode() if first is not None and first.content_type is not None else None
        )

    # ---- readiness ----

    def _consumer_reason(self) -> str | None:
        if self._consumer is None:
            return "not consuming yet (waiting for the algo)" if self._algo_reason else "not consuming"
        if not self._consumer.assignment():
            return "no partitions assigned"
        return None

    async def _check_algo(self) -> str | None:
        try:
            reason = await self.executor.check()
        except Exception as e:  # a failing check means "not ready"
            reason = f"check failed: {e}"
        if reason != self._algo_reason:
            if reason:
                log.warning("algo not ready: %s", reason)
            else:
                log.info("algo ready")
        self._algo_reason = reason
        return reason

    async def _wait_for_algo(self, stop: asyncio.Event) -> bool:
        """Wait until the algo answers; False if `stop` came first."""
        while await self._check_algo() is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(READY_POLL_S):
                    await stop.wait()
            if stop.is_set():
                return False
        return True

    async def _monitor_algo(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._check_algo()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await stop.wait()

    async def _monitor_lag(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                for tp, lag in (await self.bus.lag(self.config.consumer_group, self.topics)).items():
                    self.metrics.lag(tp.topic, tp.partition, lag.lag)
            except Exception as e:
                log.debug("lag query failed: %s", e)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LAG_INTERVAL_S):
                    await stop.wait()

    # ---- lifecycle ----

    async def run(self, stop: asyncio.Event) -> None:
        await self.claim_check.start()
        try:
            await self._run(stop)
        finally:
            await self.claim_check.close()

    async def _run(self, stop: asyncio.Event) -> None:
        await self.executor.start()
        if all(o.message_data_type.value == _EMBEDDED.value for o in self.config.outputs):
            self._inline = self.executor.sync_runner()  # a FileReference output needs the (async) claim check
            if self._inline is not None:
                self._payload_run = self.executor.payload_runner()
        txn_id = f"{self.config.consumer_group}-{self.options.instance}" if self._eos else None
        self._producer = self.bus.producer(transactional_id=txn_id)
        monitors = [asyncio.create_task(self._monitor_lag(stop), name="algorun-runner-lag")]
        try:
            if not await self._wait_for_algo(stop):
                return
            monitors.append(asyncio.create_task(self._monitor_algo(stop), name="algorun-runner-algo"))
            self._consumer = self._open_consumer()
            log.info("consuming %s as %s", ", ".join(self.topics), self.config.consumer_group)
            if self._eos:
                await self._loop_transactional(stop)
            else:
                await self._loop(stop)
        finally:
            await self._drain()
            for t in monitors:
                t.cancel()
            await asyncio.gather(*monitors, return_exceptions=True)
            await self.executor.close()

    def _open_consumer(self) -> Consumer:
        return self.bus.consumer(
            self.config.consumer_group, self.topics, on_assign=self._on_assign, on_revoke=self._on_revoke
        )

    def _on_assign(self, tps: list[TopicPartition]) -> None:
        log.info("assigned %s", ", ".join(f"{tp.topic}[{tp.partition}]" for tp in tps))

    def _on_revoke(self, tps: list[TopicPartition]) -> None:
        log.info("revoked %s", ", ".join(f"{tp.topic}[{tp.partition}]" for tp in tps))
        self.tracker.forget(tps)
        self.staging.drop(tps)
        for tp in tps:
            self._paused.discard(tp)

    async def _drain(self) -> None:
        """Stop: finish the runs in progress (within the grace period), commit the finished prefix, close.

        Fetched messages no run has started yet are left for the next reader (they are not committed), and runs
        waiting out a retry backoff or a retry copy's due time stop waiting (`_lane_sleep`): finishing a full
        buffer (`max_buffered` per partition) or a minutes-long backoff would outlast any grace period, and the
        pod would be killed with nothing committed."""
        grace = self.options.grace_seconds
        self._stop_waiting.set()
        left = 0
        for lane in self._lanes.values():
            for item in lane.queue:
                self._queued[item.tp] -= 1
            left += len(lane.queue)
            lane.queue.clear()
        if left:
            log.info("stopping: %d fetched messages not started, left for the next reader", left)
            self._busy(-left)
        try:
            async with asyncio.timeout(grace):
                await self._idle.wait()
        except TimeoutError:
            log.warning("shutdown grace of %ss over: %d messages unfinished, read again later", grace, self._writing)
        for lane in list(self._lanes.values()):
            if lane.task is not None:
                lane.task.cancel()
        for t in list(self._background):
            t.cancel()
        if self._consumer is not None and not self._eos:
            await self._commit()
        if self._consumer is not None:
            try:
                await self._consumer.close()
            except BusError as e:
                log.warning("closing the consumer: %s", e)
        if self._producer is not None:
            await self._producer.close()

    # ---- at-least-once loop ----

    async def _loop(self, stop: asyncio.Event) -> None:
        consumer = self._consumer
        assert consumer is not None
        last_commit = time.monotonic()
        last_expiry = last_commit
        stop_task = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                fetch = asyncio.ensure_future(consumer.getmany(max_messages=500, max_wait=0.2))
                await asyncio.wait({fetch, stop_task}, return_when=asyncio.FIRST_COMPLETED)
                try:
                    messages = await fetch  # a batch already fetched is dispatched, even when stopping
                except BusError as e:
                    log.warning("consume: %s", e)
                    self.metrics.runner_error("consume")
                    await asyncio.sleep(0.5)
                    messages = []
                if not stop.is_set():
                    self._dispatch(messages)
                    self._backpressure(consumer)
                now = time.monotonic()
                if now - last_expiry >= 1.0:
                    last_expiry = now
                    self._expire_staged()
                if now - last_commit >= self.options.commit_interval_seconds:
                    last_commit = now
                    await self._commit()
        finally:
            stop_task.cancel()

    async def _commit(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        moved = self.tracker.take_moved()
        self.metrics.in_flight.set(self.tracker.in_flight)
        self.metrics.staged.set(len(self.staging))
        if not moved:
            return
        consumer.store(moved)
        try:
            await consumer.commit()
        except BusError as e:  # stored offsets stay stored: the next commit (or the revoke) takes them
            log.warning("commit: %s", e)
            self.metrics.runner_error("commit")

    def _backpressure(self, consumer: Consumer) -> None:
        limit = self.options.max_buffered
        full = [tp for tp, n in self._queued.items() if n >= limit and tp not in self._paused]
        if full:
            consumer.pause(full)
            self._paused.update(full)
        ok = [tp for tp in self._paused if self._queued.get(tp, 0) < limit // 2]
        if ok:
            consumer.resume(ok)
            self._paused.difference_update(ok)

    # ---- exactly-once loop ----

    async def _loop_transactional(self, stop: asyncio.Event) -> None:
        producer = self._producer
        assert producer is not None
        while not stop.is_set():
            consumer = self._consumer
            assert consumer is not None
            try:
                messages = await consumer.getmany(max_messages=500, max_wait=0.2)
            except BusError as e:
                log.warning("consume: %s", e)
                await asyncio.sleep(0.5)
                continue
            if not messages and not len(self.staging):
                continue
            await producer.begin_transaction()
            try:
                self._dispatch(messages)
                self._expire_staged()
                await self._idle.wait()
                if self._doomed is not None:
                    doomed, self._doomed = self._doomed, None
                    raise doomed
                moved = self.tracker.take_moved()
                if moved:
                    await producer.send_offsets_to_transaction(consumer, moved)
                await producer.commit_transaction()
            except (BusError, AlgoFailure) as e:
                log.warning("transaction failed, reading the batch again in %ss: %s", TRANSACTION_RETRY_S, e)
                self.metrics.runner_error("transaction")
                with contextlib.suppress(BusError):
                    await producer.abort_transaction()
                await self._restart_consumer()
                with contextlib.suppress(TimeoutError):  # not at once: a batch that always fails is not a hot loop
                    await asyncio.wait_for(stop.wait(), TRANSACTION_RETRY_S)

    async def _restart_consumer(self) -> None:
        """After an aborted transaction: forget everything in memory and read again from the last commit."""
        for lane in list(self._lanes.values()):
            if lane.task is not None:
                lane.task.cancel()
        self._lanes.clear()
        self._ready.clear()
        self._queued.clear()
        self._writing = 0
        self._idle.set()
        self.tracker = OffsetTracker()
        self.staging = Staging()
        if self._consumer is not None:
            with contextlib.suppress(BusError):
                await self._consumer.close()
        self._consumer = self._open_consumer()

    # ---- dispatch ----

    def _dispatch(self, messages: list[Message]) -> None:
        """Hand a fetched batch to the lanes, in read order. A message whose lane is idle runs inline when the
        executor allows it; the others (and whatever the inline path declines) queue in their lane's task.

        While no lane exists (the steady state of a fast algo), the batch runs inline in one loop until a message
        is not for that path; only the rest goes message by message."""
        inline = self._inline is not None
        self.tracker.add_all(messages)  # all of them first: one that is not finished holds the commit back
        self._busy(len(messages))
        batch = self._collecting = _Unacked() if inline and not self._eos else None
        try:
            start, stopped, carried = 0, -1, None
            if inline and not self._lanes:
                start, carried = self._run_inline(messages, 0, batch)
                stopped = start
            if start < len(messages):
                self._dispatch_each(messages, start, stopped, carried)
        finally:
            self._collecting = None
            if inline:
                self._flush_inline_counts()
            if batch is not None and batch.records:
                self._submit(batch)  # before any lane task runs: a lane's later writes follow these
        self._start_lanes()

    def _dispatch_each(self, messages: list[Message], start: int, stopped: int, carried: _Carried | None) -> None:
        """`_dispatch`'s loop from `messages[start]`, message by message. `stopped`: the index where the inline loop
        stopped (-1 if it did not run), with `carried` (see `_run_inline`): that message queues in its lane
        without a second try."""
        lanes = self._lanes
        retry_topics = self._retry_topics
        inline = self._inline is not None
        by_key = self.options.key_concurrency
        tp = TopicPartition("", -1)
        for index in range(start, len(messages)):
            m = messages[index]
            if m.partition != tp.partition or m.topic != tp.topic:
                tp = TopicPartition(m.topic, m.partition)  # a batch comes in runs of one partition
            key = lane_key(tp, m.key, by_key and m.topic not in retry_topics) if by_key else tp
            lane = lanes.get(key) if lanes else None
            if index == stopped:
                queued_with = carried
            elif lane is None and inline:
                done, queued_with = self._run_inline([m], 0, self._collecting)
                if done:
                    continue
            else:
                queued_with = None
            if lane is None:
                lane = lanes[key] = _Lane()
            lane.queue.append(_Queued(m, tp, queued_with))
            self._queued[tp] = self._queued.get(tp, 0) + 1
            if lane.task is None and not lane.ready:
                lane.ready = True
                self._ready.append(key)

    def _flush_inline_counts(self) -> None:
        metrics = self.metrics
        if self._algo_seconds:
            metrics.algo_duration.observe_all(self._algo_seconds)
            self._algo_seconds.clear()
        for source in self._sources.values():
            if source.read:
                name = source.input.name
                metrics.input_bytes(name, "ok", source.read_bytes, source.read_bytes)
                metrics.message(name, "ok", source.ok)
                source.read = source.read_bytes = source.ok = 0

    def _start_lanes(self) -> None:
        """Give waiting lanes a task, at most `concurrency` working at once. With key lanes there can be a lane
        per message: a task (and a semaphore waiter) for each of thousands of buffered messages cost more than
        the runs themselves (asyncio.Semaphore.locked() walks its waiters on every acquire)."""
        ready, lanes, limit = self._ready, self._lanes, self.options.concurrency
        while ready and self._active < limit:
            key = ready.popleft()
            lane = lanes.get(key)
            if lane is None or not lane.ready:
                continue
            lane.ready = False
            if lane.task is not None or not lane.queue:
                continue
            self._active += 1
            lane.task = asyncio.create_task(self._run_lane(key, lane))

    async def _lane_sleep(self, seconds: float) -> None:
        """Only this lane waits: while it sleeps, its place goes to another lane. Stopping ends the wait with
        `_Abandoned`: the message stays unfinished and is read again by the next owner."""
        self._active -= 1
        self._start_lanes()
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self._stop_waiting.wait()
            if self._stop_waiting.is_set():
                raise _Abandoned
        finally:
            self._active += 1

    def _busy(self, n: int) -> None:
        self._writing += n
        if self._writing > 0:
            self._idle.clear()
        else:
            self._idle.set()

    def _internal_error(self, m: Message) -> None:
        """A bug, not the message's fault: never commit past it; it is read again after a restart."""
        log.exception("unexpected error handling %s[%d]@%d", m.topic, m.partition, m.offset)
        self.metrics.runner_error("internal")
        self._busy(-1)

    async def _run_lane(self, key: Hashable, lane: _Lane) -> None:
        inline = self._inline is not None
        try:
            while lane.queue:
                item = lane.queue.popleft()
                m, tp, carried = item.message, item.tp, item.carried
                self._queued[tp] -= 1
                if not self.tracker.owns(tp):  # revoked while queued: the new owner reads it
                    self._busy(-1)
                    continue
                try:
                    if carried is None and inline:
                        done, carried = self._run_inline([m], 0, None)
                        self._flush_inline_counts()
                        if done:
                            continue
                    await self._handle(m, carried)
                except asyncio.CancelledError:
                    raise
                except _Abandoned:
                    self._busy(-1)  # not finished: its offset stays uncommitted
                except Exception:
                    self._internal_error(m)
        finally:
            self._active -= 1
            lane.task = None
            if self._lanes.get(key) is lane and not lane.queue:
                del self._lanes[key]
            self._start_lanes()

    def _run_inline(self, messages: list[Message], start: int, batch: _Unacked | None) -> tuple[int, _Carried | None]:
        """The short path for the common message: a first attempt, run=true, embedded, nothing staged for its
        trace. Runs `messages[start:]` in order through the executor's sync runner, in one loop (a fetched batch
        costs no call per message but the algo's), until a message is not for this path.

        Returns the index of that message (`len(messages)` when every one ran) and what it carries: None (not for
        this path, nothing was done: the lane's general path takes it), an AlgoFailure (the algo ran and failed;
        the general path continues from there, retries or dead letter, without running it again), or `_Ran`
        (the algo ran and an output is to be claim-checked; the general path writes its outputs). Inputs are
        counted here in every case (`_flush_inline_counts`). A bug (an unexpected exception) is logged for its
        message, which is skipped (`_internal_error`: never committed), and the loop goes on with the next.

        Writes: with `batch` (a dispatch outside a transaction) they join it in run order, the usual run (one
        output, to the first declared one, nothing inherited) as a bare record (`_Unacked`); without, each run
        is `_finish`ed on its own.
        """
        slot = TraceSlot()  # log lines of each run carry its traceID
        token = trace_var.set(slot)
        try:
            return self._inline_loop(messages, start, batch, slot)
        finally:
            slot.trace_id = None
            trace_var.reset(token)

    def _inline_loop(
        self, messages: list[Message], start: int, batch: _Unacked | None, slot: TraceSlot
    ) -> tuple[int, _Carried | None]:
        """`_run_inline`'s loop. Per message, only what the message needs: this is the runner's hottest code."""
        sources, staging, secs = self._sources, self.staging, self._algo_seconds
        payload_run, run_sync = self._payload_run, self._inline
        cfg, limit, first_ct = self._first_output, self._inline_limit, self._first_content_type
        first_topic = cfg.topic if cfg is not None and cfg.topic is not None else ""
        usual = batch if batch is not None and not batch.runs else None  # where usual runs go, while they may
        i, n = start, len(messages)
        while i < n:
            m = messages[i]
            slot.trace_id = None  # until this message's is known (an error logged meanwhile has none)
            try:
                source = sources.get(m.topic)
                if source is None or source.file_reference:
                    return i, None  # retry topics are not sources: their copies always take the general path
                # The usual layout (what `contract.first_hop` and `contract.usual_output` write) is read in place;
                # any other through a dict. Hashing five fresh header names per message cost more than this check.
                h = m.headers
                hd: dict[str, bytes] | None = None
                trace: bytes | None
                run: bytes | None
                inherited_ct: bytes | None
                data_type: bytes | None
                parent: bytes | None
                if (
                    len(h) == 5
                    and h[0][0] == _TRACE_ID
                    and h[1][0] == _RUN
                    and h[2][0] == _CONTENT_TYPE
                    and h[3][0] == _MESSAGE_DATA_TYPE
                    and h[4][0] == _TRACEPARENT
                ):
                    trace, run, inherited_ct, data_type, parent = h[0][1], h[1][1], h[2][1], h[3][1], h[4][1]
                else:
                    hd = dict(h)  # bytes values, the last of a repeated name winning (Kafka's rule)
                    get = hd.get
                    trace, run, inherited_ct = get(_TRACE_ID), get(_RUN), get(_CONTENT_TYPE)
                    data_type, parent = get(_MESSAGE_DATA_TYPE), get(_TRACEPARENT)
                if data_type == _FILE_REFERENCE:
                    return i, None
                if run is not None and run not in _GO_TRUE:
                    return i, None
                if trace:
                    trace_id = trace.decode("utf-8", "replace")
                    if not trace.isascii():  # maybe not UTF-8: the key and header are the decoded id, encoded
                        trace = trace_id.encode()
                else:
                    trace_id = contract.new_trace_id()
                    trace = trace_id.encode()
                if staging.count and staging.has((source.input.name, trace_id)):
                    return i, None
                value = m.value
                source.read += 1
                source.read_bytes += len(value)
                slot.trace_id = trace_id
                started = _monotonic()
                try:
                    if payload_run is not None:
                        result = payload_run(value)
                    else:
                        assert run_sync is not None
                        result = run_sync(self._inline_request(m, source, trace_id, dict(h) if hd is None else hd))
                except AlgoFailure as e:
                    return i, e
                finally:
                    secs.append(_monotonic() - started)  # observed with the batch (`_flush_inline_counts`)
                source.ok += 1
                if type(result) is not bytes:  # the sync runner's outputs
                    outputs: list[Output] = result  # type: ignore[assignment]
                    if self._offload_above is not None and any(len(o.payload()) > limit for o in outputs):
                        return i, _Ran(outputs)
                    writes = self._embedded_writes(m, trace_id, outputs, dict(h) if hd is None else hd)
                elif cfg is None:  # the payload runner's one output: for the first declared output, if piped
                    writes = []
                elif len(result) > limit:
                    return i, _Ran([Output(cfg.name, result)])
                else:
                    ct = first_ct if first_ct is not None else inherited_ct
                    if (
                        usual is not None
                        and ct is not None
                        and ct.isascii()
                        and (hd is None or hd.keys() <= _NOT_INHERITED)
                    ):
                        # `contract.output` of this usual message: nothing inherited, the content type as is
                        traceparent = contract.child_traceparent_raw(trace_id, parent, trace)
                        headers = contract.usual_output(trace, ct, traceparent)
                        usual.records.append((first_topic, result, trace, headers, None))
                        usual.usual.append(m)
                        usual.usual_started.append(started)
                        usual.usual_bytes += len(result)
                        i += 1
                        continue
                    writes = [self._first_write(m, dict(h) if hd is None else hd, trace_id, trace, cfg, result)]
                self._finish([m], started, writes)
                if usual is not None and usual.runs:
                    usual = None  # a run of another kind joined the batch: the later ones follow it
            except Exception:
                self._internal_error(m)
            i += 1
        return i, None

    def _inline_request(self, m: Message, source: _Source, trace_id: str, hd: dict[str, bytes]) -> Request:
        """The Request of an inline run, for executors that want more than the payload."""
        algo_input = source.input
        headers = {k: (v or b"").decode("utf-8", "replace") for k, v in hd.items()}
        content_type = headers.get(contract.CONTENT_TYPE) or (
            algo_input.content_types[0] if algo_input.content_types else None
        )
        return Request(
            trace_id=trace_id,
            input=algo_input,
            parts=[Part(m.value, content_type, headers.get(contract.FILE_NAME))],
            parameters=self.config.parameters,
            endpoint_params=headers.get(contract.ENDPOINT_PARAMS),
            headers=headers,
        )

    @staticmethod
    def _first_write(
        m: Message, hd: dict[str, bytes], trace_id: str, trace: bytes, cfg: RunnerOutput, data: bytes
    ) -> _Write:
        """`_embedded_writes` of a single `Output(cfg.name, data)`, without building it. `trace`: `trace_id`
        encoded (the key, and the output's traceID header)."""
        headers = contract.output(
            m.headers, trace_id=trace_id, data_type=_EMBEDDED, content_type=cfg.content_type, by_name=hd, trace=trace
        )
        assert cfg.topic is not None
        return _new_write(_Write, (cfg.topic, data, trace, headers, cfg.name, len(data), "ok"))

    # ---- one message ----

    async def _handle(self, m: Message, carried: _Carried | None = None) -> None:
        """The general path. `carried`: the inline path already ran the algo once (its input bytes and duration
        are counted): it failed (continue with the retry plan), or it succeeded (`_Ran`: write its outputs)."""
        source_topic = m.topic
        inb: Inbound | None = None
        try:
            inb = read_inbound(m, self._retry_topics)
            source = self._sources.get(inb.source_topic)
            if source is None:
                raise AlgoFailure(f"no input of this algo reads topic {inb.source_topic!r}", "UnknownSource")
            if source.file_reference and inb.headers.get(contract.MESSAGE_DATA_TYPE) is None:
                inb.file_reference = True
            source_topic = inb.source_topic
        except AlgoFailure as e:
            inb = inb or read_inbound(m, frozenset())
            self._finish([m], started=time.monotonic(), writes=[self._dead_letter_write(m, inb, str(e), e.error_type)])
            return
        token = trace_var.set(inb.trace_id)  # log lines of this run carry its traceID
        try:
            if inb.due is not None:
                delay = inb.due - time.time()
                if delay > 0:
                    await self._lane_sleep(delay)
            started = time.monotonic()
            algo_input = source.input
            try:
                part = await self._part(m, inb, algo_input)
            except AlgoFailure as e:
                self.metrics.input_bytes(algo_input.name, "failed", len(m.value), 0)
                self._finish([m], started, [self._dead_letter_write(m, inb, str(e), e.error_type)])
                return
            if carried is None:
                self.metrics.input_bytes(algo_input.name, "ok", len(m.value), len(part.data))
            key = (algo_input.name, inb.trace_id)
            if not inb.run:
                self.staging.stage(key, Staged(m, part, source_topic, time.monotonic()))
                self.metrics.message(algo_input.name, "staged")
                self._busy(-1)  # finished by the run that uses it
                return
            staged = self.staging.take(key)
            parts = [s.part for s in staged]
            if m.value or not parts:
                parts.append(part)
            messages = [s.message for s in staged]
            request = Request(
                trace_id=inb.trace_id,
                input=algo_input,
                parts=parts,
                parameters=self.config.parameters,
                endpoint_params=inb.endpoint_params,
                headers=inb.headers,
            )
            writes = await self._execute(m, inb, source, request, messages, carried)
            self._finish([*messages, m], started, writes)
        finally:
            trace_var.reset(token)

    async def _part(self, m: Message, inb: Inbound, algo_input: RunnerInput) -> Part:
        data = m.value
        if inb.file_reference and data:
            data = await self.claim_check.get(FileReference.parse(data))
        content_type = inb.content_type or (algo_input.content_types[0] if algo_input.content_types else None)
        return Part(data, content_type, inb.file_name)

    async def _run_algo(self, request: Request) -> list[Output]:
        """One run; an unreachable algo is waited for (not the message's fault, no retry used)."""
        while True:
            began = time.monotonic()
            try:
                async with self._sem:
                    return await self.executor.run(request)
            except AlgoUnavailable as e:
                if str(e) != self._algo_reason:
                    log.warning("algo unavailable, waiting: %s", e)
                self._algo_reason = str(e)
            finally:
                self.metrics.algo_duration.observe(time.monotonic() - began)
            # Wait before trying again even when the check passes at once: a request can fail where a connection
            # succeeds, and trying again at once would spin.
            await asyncio.sleep(READY_POLL_S)
            while await self._check_algo() is not None:  # noqa: ASYNC110 - polling the algo itself
                await asyncio.sleep(READY_POLL_S)

    async def _execute(
        self,
        m: Message,
        inb: Inbound,
        source: _Source,
        request: Request,
        staged: list[Message],
        carried: _Carried | None = None,
    ) -> list[_Write]:
        """Run (or take the inline run's outcome), following the retry plan on failure. Uploading a claim-checked
        output is part of the run: a storage failure is retried and dead-lettered like the algo's own."""
        state = inb.state
        plan = source.plan
        name = request.input.name
        while True:
            try:
                if isinstance(carried, AlgoFailure):
                    failed, carried = carried, None
                    raise failed
                if carried is not None:
                    outputs, carried = carried.outputs, None
                else:
                    outputs = await self._run_algo(request)
                    self.metrics.message(name, "ok")  # an inline run counted its own
                return await self._output_writes(m, inb, outputs)
            except AlgoFailure as failure:
                self.metrics.algo_error.inc()
                error, error_type = str(failure), failure.error_type
                log.warning("run failed (%s): %s", error_type, error)
                decision = retry_routing.next_attempt(plan, state, time.time())
                if decision is None:
                    self.metrics.message(name, "dead_letter")
                    self.metrics.dead_letter(state.step_index if state.retry_num else None)
                    return [
                        self._dead_letter_write(x, inb, error, error_type, self._run_flag(x, m)) for x in [*staged, m]
                    ]
                self.metrics.retry(decision.step.index, decision.retry_num)
                if plan.mode is retry_routing.Mode.IN_PLACE:
                    await self._lane_sleep(max(0.0, decision.due - time.time()))
                    state = retry_routing.RetryState(decision.step.index, decision.retry_num)
                    continue
                self.metrics.message(name, "retry")
                topic = self.config.retry.retry_topics.get(decision.step.backoff)
                if topic is None:  # the config has no topic for this step: never drop, dead-letter instead
                    error = f"{error} (no retry topic for backoff {decision.step.backoff})"
                    return [
                        self._dead_letter_write(x, inb, error, error_type, self._run_flag(x, m)) for x in [*staged, m]
                    ]
                return [
                    _Write(
                        topic,
                        x.value,
                        contract.message_key(inb.trace_id),
                        contract.replace(
                            retry_headers(x, inb, decision, error, error_type, self._component),
                            {contract.RUN: self._run_flag(x, m)},
                        ),
                        "",
                        len(x.value),
                        "retry",
                    )
                    for x in [*staged, m]
                ]

    @staticmethod
    def _run_flag(x: Message, trigger: Message) -> str:
        """Parts of a run keep `run=false` on retry/dead-letter copies, so a replay stages them again."""
        return "true" if x is trigger else "false"

    async def _output_writes(self, m: Message, inb: Inbound, outputs: list[Output]) -> list[_Write]:
        writes: list[_Write] = []
        key = contract.message_key(inb.trace_id)
        for out in outputs:
            cfg = self._outputs.get(out.name)
            if cfg is None or cfg.topic is None:
                continue  # not piped anywhere
            data = out.payload()
            dtype = contract.MessageDataType(cfg.message_data_type.value)
            value = data
            if dtype is _EMBEDDED and self._offload_above is not None and len(data) > self._offload_above:
                dtype = contract.MessageDataType.FILE_REFERENCE  # claim-checked: too large to travel in Kafka
            if dtype is contract.MessageDataType.FILE_REFERENCE:
                value = (await self.claim_check.put(data, out.file_name)).to_json()
            headers = contract.output(
                m.headers,
                trace_id=inb.trace_id,
                data_type=dtype,
                content_type=out.content_type or cfg.content_type,
                file_name=out.file_name,
            )
            writes.append(_Write(cfg.topic, value, key, headers, out.name, len(data), "ok"))
        return writes

    def _embedded_writes(
        self, m: Message, trace_id: str, outputs: list[Output], by_name: dict[str, bytes] | None = None
    ) -> list[_Write]:
        """`_output_writes` when every output is embedded (no claim check to wait for)."""
        writes: list[_Write] = []
        key = trace_id.encode()  # contract.message_key
        for out in outputs:
            cfg = self._outputs.get(out.name)
            if cfg is None or cfg.topic is None:
                continue  # not piped anywhere
            data = out.payload()
            headers = contract.output(
                m.headers,
                trace_id=trace_id,
                data_type=_EMBEDDED,
                content_type=out.content_type or cfg.content_type,
                file_name=out.file_name,
                by_name=by_name,
            )
            writes.append(_Write(cfg.topic, data, key, headers, out.name, len(data), "ok"))
        return writes

    def _dead_letter_write(
        self, m: Message, inb: Inbound, error: str, error_type: str, run: str | None = None
    ) -> _Write:
        headers = dead_letter_headers(m, inb, error, error_type, self._component)
        if run is not None:
            headers = contract.replace(headers, {contract.RUN: run})
        return _Write(
            self.config.retry.dead_letter_topic,
            m.value,
            contract.message_key(inb.trace_id),
            headers,
            "",
            len(m.value),
            "dlq",
        )

    # ---- writes and completion ----

    def _finish(self, messages: list[Message], started: float, writes: list[_Write]) -> None:
        """Enqueue `writes` now (keeps run order); mark `messages` finished once all are acknowledged."""
        producer = self._producer
        assert producer is not None
        if self._eos:  # acknowledged with the transaction, which also carries the offsets
            refused = self._produce_in_transaction(writes)
            if refused:
                self._spawn(self._instead_in_transaction(refused, messages, started))
            else:
                self._done(messages, started)
            return
        if not writes:
            self._done(messages, started)
            return
        batch = self._collecting
        if batch is not None:  # the inline path of a dispatch: produced with the batch's other runs
            batch.add(messages, started, writes)
            return
        batch = _Unacked()
        batch.add(messages, started, writes)
        self._submit(batch)

    def _produce_in_transaction(self, writes: list[_Write]) -> list[tuple[_Write, BusError]]:
        """Produce into the open transaction; the writes the client refused at once as too large (they never joined
        the transaction), with their errors. Any other refusal dooms the transaction (`_doomed`): it aborts and
        the batch is read again."""
        producer = self._producer
        assert producer is not None
        refused: list[tuple[_Write, BusError]] = []
        for w in writes:
            try:
                fut = producer.produce(w.topic, w.value, key=w.key, headers=w.headers)
            except BusError as e:
                self.metrics.produce_error(w.topic, type(e).__name__)
                if isinstance(e, MessageTooLarge):
                    refused.append((w, e))
                else:  # committing without this write would lose it: the transaction must abort
                    self._doomed = e
                continue
            asyncio.ensure_future(fut).add_done_callback(_consume_exception)
        return refused

    async def _instead_in_transaction(
        self, refused: list[tuple[_Write, BusError]], messages: list[Message], started: float
    ) -> None:
        """`_instead_of_too_large` inside the transaction: the reference or the dead letters join it, so the
        transaction commits the run's outcome with its offsets. Anything else refused aborts the transaction
        (the batch is read again)."""
        try:
            still = self._produce_in_transaction(await self._instead_of_too_large(refused, messages))
        except Exception as e:  # a bug; the transaction must not commit without this run's outcome
            log.exception("writing what replaces a refused write failed")
            self._doomed = BusError(f"writing what replaces a refused write failed: {e}")
        else:
            if still:
                self._doomed = still[0][1]
        self._done(messages, started)  # counted out either way: the transaction waits for every run

    def _submit(self, batch: _Unacked) -> None:
        """Enqueue a batch's writes now, in order, with one `produce_many`; the sweep settles it."""
        batch.future = self._produce_many(batch.records)
        self._unacked.append(batch)
        if not self._sweep_armed:
            self._sweep()

    def _produce_many(self, records: list[OutRecord]) -> asyncio.Future[Failures]:
        producer = self._producer
        assert producer is not None
        try:
            return asyncio.ensure_future(producer.produce_many(records))
        except BusError as e:  # e.g. closed: every write failed (and is written again, or waits for shutdown)
            fut: asyncio.Future[Failures] = asyncio.get_running_loop().create_future()
            fut.set_result(dict.fromkeys(range(len(records)), e))
            return fut

    def _sweep(self, _: object = None) -> None:
        """Settle the batches whose writes are all acknowledged, oldest first, then wait on the first batch still
        in flight: one callback per batch rather than per write. A batch behind an unacknowledged one waits for
        the next sweep, which delays its commit by at most that batch's round trip; offsets are still committed
        only as the contiguous finished prefix."""
        self._sweep_armed = False
        unacked = self._unacked
        while unacked:
            head = unacked[0]
            fut = head.future
            assert fut is not None
            if not fut.done():
                self._sweep_armed = True
                fut.add_done_callback(self._sweep)
                return
            unacked.popleft()
            self._settle(head)

    def _settle(self, batch: _Unacked) -> None:
        """Count each write's outcome; a run is done when all its writes were acknowledged, else its failed
        writes are written again (`_rewrite`) and only then is it done."""
        fut = batch.future
        assert fut is not None
        failures: Failures
        if fut.cancelled() or fut.exception() is not None:
            error = BusError(f"produce failed: {'cancelled' if fut.cancelled() else fut.exception()}")
            failures = dict.fromkeys(range(len(batch.records)), error)
        else:
            failures = fut.result()
        if not failures:  # all acknowledged
            if batch.usual:
                self._done_usual(batch.usual, batch.usual_started, batch.usual_bytes)
            self._count_acks(batch.writes)
            self._done_runs(batch.runs)
            return
        metrics = self.metrics
        usual = len(batch.usual)
        if usual:
            acked: list[Message] = []
            acked_started: list[float] = []
            acked_bytes = 0
            for j, (m, started) in enumerate(zip(batch.usual, batch.usual_started, strict=True)):
                refused = failures.get(j)
                record = batch.records[j]
                if refused is None:
                    acked.append(m)
                    acked_started.append(started)
                    acked_bytes += len(record[1])
                    continue
                metrics.produce_error(record[0], type(refused).__name__)
                self._spawn(self._rewrite([(self._usual_write(record), refused)], [m], started))
            if acked:
                self._done_usual(acked, acked_started, acked_bytes)
        writes = batch.writes
        i = usual
        for messages, started, n in batch.runs:
            failed: list[tuple[_Write, BusError]] | None = None
            for j in range(i, i + n):
                w = writes[j - usual]
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
                self._spawn(self._rewrite(failed, messages, started))
            else:
                self._done(messages, started)

    def _usual_write(self, record: OutRecord) -> _Write:
        """The `_Write` of a usual run's record (`_Unacked`), to write it again."""
        cfg = self._first_output
        assert cfg is not None
        topic, value, key, headers, _ = record
        return _Write(topic, value, key or b"", headers or [], cfg.name, len(value), "ok")

    def _done_usual(self, messages: list[Message], started: list[float], data_bytes: int) -> None:
        """Usual runs (`_Unacked`) acknowledged: counted in the metrics, and done (`_done_runs`, one message each)."""
        cfg = self._first_output
        assert cfg is not None and cfg.topic is not None
        metrics = self.metrics
        metrics.ack(cfg.topic, len(messages))
        metrics.output_bytes(cfg.name, "ok", data_bytes, data_bytes)
        metrics.run_duration.observe_since(_monotonic(), started)  # started in run order: increasing
        self.tracker.done_all(messages)
        self._busy(-len(messages))

    def _count_acks(self, writes: list[_Write]) -> None:
        """Acknowledged writes into the metrics, grouped (a batch's writes mostly share topic and output)."""
        metrics = self.metrics
        groups: dict[tuple[str, str, str], list[int]] = {}
        for w in writes:
            key = (w.topic, w.output, w.status)
            counts = groups.get(key)
            if counts is None:
                counts = groups[key] = [0, 0, 0]
            counts[0] += 1
            counts[1] += len(w.value)
            counts[2] += w.data_size
        for (topic, output, status), (n, message_bytes, data_bytes) in groups.items():
            metrics.ack(topic, n)
            metrics.output_bytes(output, status, message_bytes, data_bytes)

    async def _rewrite(self, failed: list[tuple[_Write, BusError]], messages: list[Message], started: float) -> None:
        """Writes the broker did not acknowledge: send again until it does (the offsets wait meanwhile). A write
        too large for the broker never will be: `_instead_of_too_large` replaces it first."""
        attempt = 0
        pending = await self._instead_of_too_large(failed, messages)
        while pending:
            delay = REPRODUCE_BACKOFF_S[min(attempt, len(REPRODUCE_BACKOFF_S) - 1)]
            attempt += 1
            log.warning("%d writes not acknowledged; writing again in %ss", len(pending), delay)
            await asyncio.sleep(delay)
            failures: Failures
            try:
                failures = await self._produce_many(_records(pending))
            except Exception as e:  # whatever the batch failed with, every write of it is tried again
                failures = dict.fromkeys(range(len(pending)), BusError(str(e)))
            still: list[tuple[_Write, BusError]] = []
            for j, w in enumerate(pending):
                error = failures.get(j)
                if error is not None:
                    self.metrics.produce_error(w.topic, type(error).__name__)
                    still.append((w, error))
                else:
                    self.metrics.ack(w.topic)
                    self.metrics.output_bytes(w.output, w.status, len(w.value), w.data_size)
            pending = await self._instead_of_too_large(still, messages)
        self._done(messages, started)

    async def _instead_of_too_large(
        self, failed: list[tuple[_Write, BusError]], messages: list[Message]
    ) -> list[_Write]:
        """The writes to send again. An output over the broker's message size limit is claim-checked when storage
        is configured (its reference is written instead); otherwise, or if the upload fails, the run's inputs
        are dead-lettered with the error, once, and the stream goes on. Writing it again would stall its
        partition's commits forever."""
        out: list[_Write] = []
        dead_lettered = False
        for w, error in failed:
            if not isinstance(error, MessageTooLarge):
                out.append(w)
                continue
            if w.status == "dlq":  # its input fitted; its error headers did not: the dead letter goes without value
                log.error(
                    "a dead letter of %d bytes is over the broker's limit: written without its value", len(w.value)
                )
                out.append(w._replace(value=b"", headers=contract.value_omitted(w.headers, w.value)))
                continue
            reason = f"output {w.output!r} of {len(w.value)} bytes is over the broker's message size limit ({error})"
            if self._offload_above is not None and w.status == "ok":
                try:
                    ref = await self.claim_check.put(w.value)
                except AlgoFailure as e:
                    reason = f"{reason}; claim check failed: {e}"
                else:
                    log.warning("%s: written as a FileReference instead", reason)
                    headers = contract.replace(w.headers, {_MESSAGE_DATA_TYPE: _FILE_REFERENCE.decode()})
                    out.append(w._replace(value=ref.to_json(), headers=headers))
                    continue
            if not dead_lettered:
                dead_lettered = True
                log.error("%s: its input is dead-lettered", reason)
                self.metrics.dead_letter(None)
                trigger = messages[-1]
                out.extend(
                    self._dead_letter_write(
                        x, read_inbound(x, self._retry_topics), reason, "MessageTooLarge", self._run_flag(x, trigger)
                    )
                    for x in messages
                )
        return out

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _done(self, messages: list[Message], started: float) -> None:
        """The run's writes are acknowledged: its messages (staged parts and trigger) may be committed."""
        self._done_runs([(messages, started, 0)])

    def _done_runs(self, runs: list[tuple[list[Message], float, int]]) -> None:
        """`_done` for every run of a batch at once."""
        now = _monotonic()
        self.metrics.run_duration.observe_all([now - started for _, started, _ in runs])
        if len(runs) == 1:
            self.tracker.done_all(runs[0][0])
        else:
            self.tracker.done_all([m for messages, _, _ in runs for m in messages])
        self._busy(-len(runs))  # staged parts stopped counting when they were staged

    def _expire_staged(self) -> None:
        for (input_name, trace_id), items in self.staging.expired(time.monotonic(), self.options.staging_ttl_seconds):
            log.warning(
                "trace %s: %d staged parts on %s never got run=true; dead-lettered", trace_id, len(items), input_name
            )
            for s in items:
                inb = read_inbound(s.message, self._retry_topics)
                self._busy(1)
                self._finish(
                    [s.message],
                    s.since,
                    [
                        self._dead_letter_write(
                            s.message, inb, "staged part never triggered (no run=true)", "StagingExpired"
                        )
                    ],
                )


def _consume_exception(fut: asyncio.Future[Delivery]) -> None:
    if not fut.cancelled():
        fut.exception()
