"""When input offsets are committed relative to the outputs they caused: the runner's consume loop, one per
commit mode.

- `AtLeastOnce`: fetched batches are dispatched as they come; every `commit_interval_seconds` the contiguous
  finished prefix (`bus.offsets.OffsetTracker`) is stored and committed. A message is finished only once its writes
  are acknowledged (`outbox.Outbox`), so a crash reads again what was not, and an output may be written twice.
- `Transactional` (`exactly_once`): each fetched batch is processed inside a Kafka transaction that carries its
  writes and its input offsets (`outbox.TransactionalOutbox`): begin, dispatch, wait until every run is
  finished, commit. A failure aborts the transaction, and the batch is read again from the last commit.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
from typing import Protocol

from algorun.api.configs import RunnerOutput
from algorun.bus.errors import BusError
from algorun.bus.interface import Consumer, Producer
from algorun.bus.types import Message
from algorun.runner.config import RunnerOptions
from algorun.runner.metrics import RunnerMetrics
from algorun.runner.model import AlgoFailure
from algorun.runner.outbox import Outbox, TransactionalOutbox
from algorun.runner.oversize import Oversize
from algorun.runner.progress import Progress
from algorun.runner.staging import Staging

log = logging.getLogger(__name__)

FETCH_MAX_MESSAGES = 500
FETCH_MAX_WAIT_S = 0.2
CONSUME_ERROR_WAIT_S = 0.5
"""The wait after a failed fetch, before the next."""
STAGING_EXPIRY_INTERVAL_S = 1.0
TRANSACTION_RETRY_S = 1.0
"""The wait before a batch whose transaction aborted is read again."""


class Cycle(Protocol):
    """What a commit policy's loop drives: the runner."""

    consumer: Consumer | None
    progress: Progress
    staging: Staging
    metrics: RunnerMetrics
    options: RunnerOptions

    def dispatch(self, messages: list[Message]) -> None: ...

    def backpressure(self) -> None: ...

    def expire_staged(self) -> None: ...

    async def restart_consumer(self) -> None: ...


class CommitPolicy(abc.ABC):
    @abc.abstractmethod
    def transactional_id(self, group: str, instance: str) -> str | None:
        """The producer's transactional id (None: not transactional)."""

    @abc.abstractmethod
    def outbox(
        self,
        producer: Producer,
        progress: Progress,
        metrics: RunnerMetrics,
        oversize: Oversize,
        plain_output: RunnerOutput | None,
    ) -> Outbox:
        """The outbox of this mode, over `producer`."""

    @abc.abstractmethod
    async def consume(self, cycle: Cycle, stop: asyncio.Event) -> None:
        """Fetch, dispatch and commit until `stop` is set."""

    @abc.abstractmethod
    async def on_stop(self, cycle: Cycle) -> None:
        """After the drain, before the consumer closes."""


class AtLeastOnce(CommitPolicy):
    def transactional_id(self, group: str, instance: str) -> str | None:
        return None

    def outbox(
        self,
        producer: Producer,
        progress: Progress,
        metrics: RunnerMetrics,
        oversize: Oversize,
        plain_output: RunnerOutput | None,
    ) -> Outbox:
        return Outbox(producer, progress, metrics, oversize, plain_output)

    async def consume(self, cycle: Cycle, stop: asyncio.Event) -> None:
        """Fetch and dispatch; every `commit_interval_seconds` start a commit that runs beside the next fetches
        (at most one at a time). A commit is a round trip to the broker: awaited in the loop, it held every
        message that arrived meanwhile, a share of the runner's latency tail (`benchmarks/latency.py`)."""
        consumer = cycle.consumer
        assert consumer is not None
        last_commit = time.monotonic()
        last_expiry = last_commit
        stop_task = asyncio.ensure_future(stop.wait())
        committing: asyncio.Task[None] | None = None
        try:
            while not stop.is_set():
                fetch = asyncio.ensure_future(
                    consumer.getmany(max_messages=FETCH_MAX_MESSAGES, max_wait=FETCH_MAX_WAIT_S)
                )
                await asyncio.wait({fetch, stop_task}, return_when=asyncio.FIRST_COMPLETED)
                try:
                    messages = await fetch  # a batch already fetched is dispatched, even when stopping
                except BusError as e:
                    log.warning("consume: %s", e)
                    cycle.metrics.runner_error("consume")
                    await asyncio.sleep(CONSUME_ERROR_WAIT_S)
                    messages = []
                if not stop.is_set():
                    cycle.dispatch(messages)
                    cycle.backpressure()
                now = time.monotonic()
                if now - last_expiry >= STAGING_EXPIRY_INTERVAL_S:
                    last_expiry = now
                    cycle.expire_staged()
                if committing is not None and committing.done():
                    committing.result()  # a failure `commit` does not handle ends the loop, as when awaited
                    committing = None
                if now - last_commit >= cycle.options.commit_interval_seconds and committing is None:
                    last_commit = now
                    committing = asyncio.ensure_future(self.commit(cycle))
        finally:
            stop_task.cancel()
            if committing is not None:
                # on_stop commits after the drain; this one must be over first (one commit at a time).
                await asyncio.gather(committing, return_exceptions=True)

    async def commit(self, cycle: Cycle) -> None:
        """Store and commit the finished prefix. Stored offsets stay stored when the commit fails: the next commit
        (or the revoke) takes them."""
        consumer = cycle.consumer
        assert consumer is not None
        tracker = cycle.progress.tracker
        moved = tracker.take_moved()
        cycle.metrics.in_flight.set(tracker.in_flight)
        cycle.metrics.staged.set(len(cycle.staging))
        if not moved:
            return
        consumer.store(moved)
        try:
            await consumer.commit()
        except BusError as e:
            log.warning("commit: %s", e)
            cycle.metrics.runner_error("commit")

    async def on_stop(self, cycle: Cycle) -> None:
        await self.commit(cycle)


class Transactional(CommitPolicy):
    """Nothing is committed at a stop: a batch's transaction commits when its runs are finished, or aborts."""

    def __init__(self) -> None:
        self._outbox: TransactionalOutbox | None = None

    def transactional_id(self, group: str, instance: str) -> str | None:
        return f"{group}-{instance}"

    def outbox(
        self,
        producer: Producer,
        progress: Progress,
        metrics: RunnerMetrics,
        oversize: Oversize,
        plain_output: RunnerOutput | None,
    ) -> Outbox:
        self._outbox = TransactionalOutbox(producer, progress, metrics, oversize, plain_output)
        return self._outbox

    async def on_stop(self, cycle: Cycle) -> None:
        return None

    async def consume(self, cycle: Cycle, stop: asyncio.Event) -> None:
        outbox = self._outbox
        assert outbox is not None
        while not stop.is_set():
            consumer = cycle.consumer
            assert consumer is not None
            try:
                messages = await consumer.getmany(max_messages=FETCH_MAX_MESSAGES, max_wait=FETCH_MAX_WAIT_S)
            except BusError as e:
                log.warning("consume: %s", e)
                await asyncio.sleep(CONSUME_ERROR_WAIT_S)
                continue
            if not messages and not len(cycle.staging):
                continue
            await outbox.begin()
            try:
                cycle.dispatch(messages)
                cycle.expire_staged()
                await cycle.progress.idle.wait()
                await outbox.commit(consumer, cycle.progress.tracker)
            except (BusError, AlgoFailure) as e:
                log.warning("transaction failed, reading the batch again in %ss: %s", TRANSACTION_RETRY_S, e)
                cycle.metrics.runner_error("transaction")
                with contextlib.suppress(BusError):
                    await outbox.abort()
                await cycle.restart_consumer()
                with contextlib.suppress(TimeoutError):  # not at once: a batch that always fails is not a hot loop
                    await asyncio.wait_for(stop.wait(), TRANSACTION_RETRY_S)
