"""Ordering and concurrency: a *lane* per partition (or per key within a partition with `key_concurrency`) runs
its messages one after another in read order; lanes run concurrently, at most `concurrency` working at once.

A lane exists while it has messages: it is created when a message queues in it and deleted when its task finds
it empty. A lane waiting for a task sits in a ready queue, so a burst of thousands of key lanes costs a deque
entry each rather than a task and a semaphore waiter each. A lane that sleeps (a backoff, a retry copy's due
time) gives its place to another (`sleep`). Per partition, the count of queued messages drives the consumer's
pause and resume (`backpressure`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from algorun.bus.interface import Consumer
from algorun.bus.types import Message, TopicPartition

H = TypeVar("H")


class Abandoned(Exception):
    """Stopping ended a lane's sleep; its message is left unfinished (read again by the next owner)."""


@dataclass(slots=True)
class Queued(Generic[H]):
    """A message waiting in its lane, with what an earlier attempt hands over (`handover`), if any."""

    message: Message
    tp: TopicPartition
    handover: H | None = None


@dataclass(slots=True)
class _Lane(Generic[H]):
    queue: deque[Queued[H]] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None
    ready: bool = False  # waiting in Lanes._ready for a task


class Lanes(Generic[H]):
    """The lanes of one runner. `process(item)` handles one queued message; it is awaited in the lane's task."""

    def __init__(self, concurrency: int, max_buffered: int, process: Callable[[Queued[H]], Awaitable[None]]) -> None:
        self._limit = concurrency
        self._max_buffered = max_buffered
        self._process = process
        self._lanes: dict[Hashable, _Lane[H]] = {}
        self._ready: deque[Hashable] = deque()  # lanes with messages, waiting for a task
        self._active = 0  # lane tasks not sleeping
        self._queued: dict[TopicPartition, int] = {}
        self._paused: set[TopicPartition] = set()
        self._stopping = asyncio.Event()  # set when stopping: sleeping lanes give up

    def __bool__(self) -> bool:
        """Whether any lane exists (none in the steady state of a fast algo)."""
        return bool(self._lanes)

    def has(self, key: Hashable) -> bool:
        return key in self._lanes

    def enqueue(self, key: Hashable, m: Message, tp: TopicPartition, handover: H | None) -> None:
        """Queue `m` at the end of lane `key` (created if there is none); `start` gives it a task."""
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
        lane.queue.append(Queued(m, tp, handover))
        self._queued[tp] = self._queued.get(tp, 0) + 1
        if lane.task is None and not lane.ready:
            lane.ready = True
            self._ready.append(key)

    def start(self) -> None:
        """Give waiting lanes a task, at most `concurrency` working at once."""
        ready, lanes = self._ready, self._lanes
        while ready and self._active < self._limit:
            key = ready.popleft()
            lane = lanes.get(key)
            if lane is None or not lane.ready:
                continue
            lane.ready = False
            if lane.task is not None or not lane.queue:
                continue
            self._active += 1
            lane.task = asyncio.create_task(self._run(key, lane))

    async def sleep(self, seconds: float) -> None:
        """Only the calling lane waits: meanwhile its place goes to another lane. Stopping ends the wait with
        `Abandoned`."""
        self._active -= 1
        self.start()
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self._stopping.wait()
            if self._stopping.is_set():
                raise Abandoned
        finally:
            self._active += 1

    async def _run(self, key: Hashable, lane: _Lane[H]) -> None:
        try:
            while lane.queue:
                item = lane.queue.popleft()
                self._queued[item.tp] -= 1
                await self._process(item)
        finally:
            self._active -= 1
            lane.task = None
            if self._lanes.get(key) is lane and not lane.queue:
                del self._lanes[key]
            self.start()

    def backpressure(self, consumer: Consumer) -> None:
        """Pause partitions with `max_buffered` queued messages; resume them below half of it."""
        limit = self._max_buffered
        full = [tp for tp, n in self._queued.items() if n >= limit and tp not in self._paused]
        if full:
            consumer.pause(full)
            self._paused.update(full)
        ok = [tp for tp in self._paused if self._queued.get(tp, 0) < limit // 2]
        if ok:
            consumer.resume(ok)
            self._paused.difference_update(ok)

    def revoked(self, tps: Iterable[TopicPartition]) -> None:
        for tp in tps:
            self._paused.discard(tp)

    def stop(self) -> int:
        """Stopping: sleeping lanes give up, queued messages are dropped; how many were dropped."""
        self._stopping.set()
        left = 0
        for lane in self._lanes.values():
            for item in lane.queue:
                self._queued[item.tp] -= 1
            left += len(lane.queue)
            lane.queue.clear()
        return left

    def cancel(self) -> None:
        """Cancel every lane task."""
        for lane in list(self._lanes.values()):
            if lane.task is not None:
                lane.task.cancel()

    def clear(self) -> None:
        """Cancel every lane task and forget every lane and count (an aborted transaction reads again)."""
        self.cancel()
        self._lanes.clear()
        self._ready.clear()
        self._queued.clear()


def lane_key(tp: TopicPartition, key: bytes | None, by_key: bool) -> Hashable:
    """Messages with the same lane run one after another, in read order; different lanes run concurrently.

    A lane is a partition, or (when `by_key`) a key within a partition: per-key order is what Kafka promises
    producers, so it is kept either way. Keyless messages share one lane per partition.
    """
    if by_key and key is not None:
        return (tp, key)
    return tp
