"""The runner of one algo instance: consume, hand each run to the executor, produce, commit what is finished.

`Runner` orchestrates the parts, each in its own module:
- `commit`: the consume loop of the commit mode (`AtLeastOnce`, or `Transactional` with `exactly_once`);
- `lanes`: ordering and concurrency (a lane per partition, or per key with `key_concurrency`);
- `inline`: the short path of the common message, run while its fetched batch is dispatched;
- `general`: one message at a time for everything else (staging, claim checks, retries, dead letters);
- `outbox`: writes, acknowledgements, rewrites, transactions and the replacement of a write too large;
- `progress`: what is fetched and not finished (the committable offsets, and the count a drain waits on);
- `health`: whether the algo answers, and the consumer lag.

A fetched batch is dispatched in read order: while no lane exists (the steady state of a fast algo) it runs inline
in one loop until a message is not for that path; the rest queue in their lanes. A message is finished when every
write it caused is acknowledged, and only then can its offset be committed, as part of the contiguous finished
prefix (`bus.offsets.OffsetTracker`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from algorun.api.configs import RunnerConfig
from algorun.api.enums import MessageDataType
from algorun.bus.errors import BusError
from algorun.bus.interface import Bus, Consumer
from algorun.bus.offsets import OffsetTracker
from algorun.bus.types import Message, TopicPartition
from algorun.runner.commit import AtLeastOnce, CommitPolicy, Transactional
from algorun.runner.config import RunnerOptions
from algorun.runner.executors.base import Executor, InlineExecutor
from algorun.runner.general import GeneralPath
from algorun.runner.health import NO_PARTITIONS, AlgoHealth, monitor_lag
from algorun.runner.inline import Handover, InlinePath
from algorun.runner.lanes import Abandoned, Lanes, Queued, lane_key
from algorun.runner.metrics import RunnerMetrics
from algorun.runner.outbox import Outbox
from algorun.runner.oversize import Oversize
from algorun.runner.payloads import ClaimCheck, claim_check_from_env
from algorun.runner.progress import Progress
from algorun.runner.sources import sources_of
from algorun.runner.staging import Staging
from algorun.telemetry import Readiness

log = logging.getLogger(__name__)


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
        self.metrics = metrics or RunnerMetrics(config)
        self.health = AlgoHealth(executor)
        self.readiness = Readiness()
        self.readiness.add("algo", lambda: self.health.reason)
        self.readiness.add("consumer", self._consumer_reason)
        self._retry_topics = frozenset(config.retry.retry_topics.values())
        self._sources = sources_of(config)
        self.topics = sorted({*self._sources, *self._retry_topics})
        self.progress = Progress()
        self.staging = Staging()
        self.lanes: Lanes[Handover] = Lanes(options.concurrency, options.max_buffered, self._process)
        self.policy: CommitPolicy = Transactional() if options.exactly_once else AtLeastOnce()
        self.consumer: Consumer | None = None
        self.outbox: Outbox | None = None
        self._general: GeneralPath | None = None
        self._inline: InlinePath | None = None  # set once the executor started, if it runs inline
        self.failed: str | None = None
        """Why the runner stopped by itself (an internal error), else None."""

    @property
    def tracker(self) -> OffsetTracker:
        """The committable offsets of what was fetched."""
        return self.progress.tracker

    def _consumer_reason(self) -> str | None:
        if self.consumer is None:
            return "not consuming yet (waiting for the algo)" if self.health.reason else "not consuming"
        if not self.consumer.assignment():
            return NO_PARTITIONS
        return None

    # ---- lifecycle ----

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set, then drain. An internal error (a bug, not the message's fault) sets
        `failed` and stops the runner too: its message stays uncommitted, and holds back the commits of its
        partition, until a restart reads it again, so the process ends (non-zero, see main.serve) rather than
        keep running with a partition that can never commit."""
        self.progress.on_internal_error = lambda m: self._fail(m, stop)
        await self.claim_check.start()
        try:
            await self._run(stop)
        finally:
            await self.claim_check.close()

    async def _run(self, stop: asyncio.Event) -> None:
        await self.executor.start()
        self._assemble()
        monitors = [
            asyncio.create_task(
                monitor_lag(self.bus, self.config.consumer_group, self.topics, self.metrics, stop),
                name="algorun-runner-lag",
            )
        ]
        try:
            if not await self.health.wait_ready(stop):
                return
            monitors.append(asyncio.create_task(self.health.monitor(stop), name="algorun-runner-algo"))
            self.consumer = self._open_consumer()
            log.info("consuming %s as %s", ", ".join(self.topics), self.config.consumer_group)
            await self.policy.consume(self, stop)
        finally:
            await self._drain()
            for t in monitors:
                t.cancel()
            await asyncio.gather(*monitors, return_exceptions=True)
            await self.executor.close()

    def _fail(self, m: Message, stop: asyncio.Event) -> None:
        if self.failed is None:
            self.failed = f"an internal error handling {m.topic}[{m.partition}]@{m.offset}"
            log.error("stopping: %s; it is read again after the restart", self.failed)
        stop.set()

    def _assemble(self) -> None:
        """The producer, the outbox and the two paths, once the executor has started (it says whether it runs
        inline). A FileReference output needs the (async) claim check: then every run takes the general path."""
        config, metrics = self.config, self.metrics
        producer = self.bus.producer(
            transactional_id=self.policy.transactional_id(config.consumer_group, self.options.instance)
        )
        oversize = Oversize(
            self.claim_check,
            metrics,
            dead_letter_topic=config.retry.dead_letter_topic,
            component=config.full_name,
            retry_topics=self._retry_topics,
        )
        first = config.outputs[0] if config.outputs else None
        plain_output = first if first is not None and first.topic is not None else None
        outbox = self.outbox = self.policy.outbox(producer, self.progress, metrics, oversize, plain_output)
        self._general = GeneralPath(
            config,
            self._sources,
            self.staging,
            outbox,
            self.progress,
            metrics,
            executor=self.executor,
            health=self.health,
            claim_check=self.claim_check,
            concurrency=self.options.concurrency,
            sleep=self.lanes.sleep,
        )
        executor = self.executor
        if isinstance(executor, InlineExecutor) and all(
            o.message_data_type.value == MessageDataType.EMBEDDED.value for o in config.outputs
        ):
            run_sync = executor.sync_runner()
            if run_sync is not None:
                self._inline = InlinePath(
                    config,
                    self._sources,
                    self.staging,
                    outbox,
                    self.progress,
                    metrics,
                    run_sync=run_sync,
                    run_payload=executor.payload_runner(),
                    offload_above=self.claim_check.offload_above,
                )

    def _open_consumer(self) -> Consumer:
        return self.bus.consumer(
            self.config.consumer_group, self.topics, on_assign=self._on_assign, on_revoke=self._on_revoke
        )

    def _on_assign(self, tps: list[TopicPartition]) -> None:
        log.info("assigned %s", ", ".join(f"{tp.topic}[{tp.partition}]" for tp in tps))

    def _on_revoke(self, tps: list[TopicPartition]) -> None:
        log.info("revoked %s", ", ".join(f"{tp.topic}[{tp.partition}]" for tp in tps))
        self.progress.tracker.forget(tps)
        self.staging.drop(tps)
        self.lanes.revoked(tps)

    async def restart_consumer(self) -> None:
        """After an aborted transaction: forget everything in memory and read again from the last commit."""
        self.lanes.clear()
        self.progress.reset()
        self.staging.clear()
        if self.consumer is not None:
            with contextlib.suppress(BusError):
                await self.consumer.close()
        self.consumer = self._open_consumer()

    async def _drain(self) -> None:
        """Stop: finish the runs in progress (within the grace period), commit the finished prefix, close.

        Fetched messages no run has started yet are left for the next reader (they are not committed), and runs
        waiting out a retry backoff or a retry copy's due time stop waiting (`Lanes.sleep`): finishing a full
        buffer (`max_buffered` per partition) or a minutes-long backoff would outlast any grace period, and the
        pod would be killed with nothing committed."""
        grace = self.options.grace_seconds
        left = self.lanes.stop()
        if left:
            log.info("stopping: %d fetched messages not started, left for the next reader", left)
            self.progress.count(-left)
        try:
            async with asyncio.timeout(grace):
                await self.progress.idle.wait()
        except TimeoutError:
            log.warning(
                "shutdown grace of %ss over: %d messages unfinished, read again later", grace, self.progress.unfinished
            )
        self.lanes.cancel()
        if self.outbox is not None:
            self.outbox.cancel()
        if self.consumer is not None:
            await self.policy.on_stop(self)
            try:
                await self.consumer.close()
            except BusError as e:
                log.warning("closing the consumer: %s", e)
        if self.outbox is not None:
            await self.outbox.producer.close()

    # ---- dispatch ----

    def dispatch(self, messages: list[Message]) -> None:
        """Hand a fetched batch to the lanes, in read order. A message whose lane does not exist runs inline when
        the executor allows it; the others (and whatever the inline path declines) queue in their lane."""
        outbox, inline = self.outbox, self._inline
        assert outbox is not None
        self.progress.fetched(messages)
        batch = outbox.open_batch() if inline is not None else None
        try:
            start, stopped, handover = 0, -1, None
            if inline is not None and not self.lanes:
                start, handover = inline.run(messages, 0, batch)
                stopped = start
            if start < len(messages):
                self._dispatch_each(messages, start, stopped, handover)
        finally:
            if inline is not None:
                inline.flush_counts()
                outbox.close_batch()  # before any lane task runs: a lane's later writes follow these
        self.lanes.start()

    def _dispatch_each(self, messages: list[Message], start: int, stopped: int, handover: Handover | None) -> None:
        """`dispatch`'s loop from `messages[start]`, message by message. `stopped`: the index where the inline loop
        stopped (-1 if it did not run), with `handover`: that message queues without a second try."""
        lanes, inline, outbox = self.lanes, self._inline, self.outbox
        assert outbox is not None
        retry_topics = self._retry_topics
        by_key = self.options.key_concurrency
        tp = TopicPartition("", -1)
        for index in range(start, len(messages)):
            m = messages[index]
            if m.partition != tp.partition or m.topic != tp.topic:
                tp = TopicPartition(m.topic, m.partition)  # a batch comes in runs of one partition
            key = lane_key(tp, m.key, by_key and m.topic not in retry_topics) if by_key else tp
            queued_with: Handover | None = None
            if index == stopped:
                queued_with = handover
            elif inline is not None and not lanes.has(key):
                done, queued_with = inline.run([m], 0, outbox.collecting)
                if done:
                    continue
            lanes.enqueue(key, m, tp, queued_with)

    async def _process(self, item: Queued[Handover]) -> None:
        """One queued message, in its lane's task: inline when it can be, else the general path."""
        m, handover = item.message, item.handover
        if not self.progress.tracker.owns(item.tp):  # revoked while queued: the new owner reads it
            self.progress.count(-1)
            return
        try:
            inline = self._inline
            if handover is None and inline is not None:
                done, handover = inline.run([m], 0, None)
                inline.flush_counts()
                if done:
                    return
            assert self._general is not None
            await self._general.handle(m, handover)
        except asyncio.CancelledError:
            raise
        except Abandoned:
            self.progress.count(-1)  # not finished: its offset stays uncommitted
        except Exception:
            self.progress.internal_error(m, self.metrics)

    def backpressure(self) -> None:
        if self.consumer is not None:
            self.lanes.backpressure(self.consumer)

    def expire_staged(self) -> None:
        if self._general is not None:
            self._general.expire_staged(self.options.staging_ttl_seconds)
