"""A real consumer (or bus) whose commits wait at a gate the test opens, as commits to a slow broker wait: for the
tests that check a consume loop goes on reading while its commit is on its way."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from algorun.bus.interface import Bus, Consumer, PartitionsCallback, Producer
from algorun.bus.types import Message, TopicPartition


class GatedCommits:
    """Delegates to `consumer`; each `commit` waits for `gate` first. Counts the commits started, those in
    progress and the most in progress at once; `changed` is set whenever a commit starts."""

    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer
        self.gate = asyncio.Event()
        self.started = 0
        self.running = 0
        self.most_at_once = 0
        self.changed = asyncio.Event()

    async def getmany(self, max_messages: int = 500, max_wait: float = 1.0) -> list[Message]:
        return await self.consumer.getmany(max_messages, max_wait)

    def store(self, offsets: Mapping[TopicPartition, int] | Iterable[Message]) -> None:
        self.consumer.store(offsets)

    async def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        self.started += 1
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        self.changed.set()
        try:
            await self.gate.wait()
            await self.consumer.commit(offsets)
        finally:
            self.running -= 1

    def assignment(self) -> set[TopicPartition]:
        return self.consumer.assignment()

    def pause(self, partitions: Iterable[TopicPartition]) -> None:
        self.consumer.pause(partitions)

    def resume(self, partitions: Iterable[TopicPartition]) -> None:
        self.consumer.resume(partitions)

    async def close(self) -> None:
        self.gate.set()
        await self.consumer.close()


class GatedBus:
    """Delegates to `bus`; its consumers are `GatedCommits` (the last one made is `gated`)."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.gated: GatedCommits | None = None

    def producer(self, *, transactional_id: str | None = None) -> Producer:
        return self.bus.producer(transactional_id=transactional_id)

    def consumer(
        self,
        group: str | None,
        topics: Sequence[str],
        *,
        from_beginning: bool = True,
        on_assign: PartitionsCallback | None = None,
        on_revoke: PartitionsCallback | None = None,
    ) -> Any:
        real = self.bus.consumer(group, topics, from_beginning=from_beginning, on_assign=on_assign, on_revoke=on_revoke)
        self.gated = GatedCommits(real)
        return self.gated
