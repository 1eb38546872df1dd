"""The one small interface every component uses to move messages: `Bus`, `Producer`, `Consumer`.

Semantics shared by both backends (the conformance suite in tests/integration/bus checks them):

- `Producer.produce` enqueues *now*, in call order, and returns an awaitable that resolves once the message
  is durably stored (broker ack, or the local log's commit). `Producer.produce_many` does the same for a batch
  with one awaitable that resolves with the messages that failed (cheaper per message than one future each).
  Messages with the same key land on the same partition (CRC-32 of the key, librdkafka's default); order
  within a partition is the produce order.
- `Consumer` is a member of a consumer group. It yields messages in partition order; nothing is committed
  until the caller marks messages processed (`store`) and commits, so an uncommitted message is redelivered
  after a restart (at-least-once). Offsets are Kafka's: commit the *next* offset (`Message.next_offset`).
- When partitions are revoked (another member joins), what was stored is committed and the rest handed back;
  `on_revoke` tells the caller to drop its in-flight work for them.
- `pause` stops yielding a partition's messages until `resume`; reading resumes after the last yielded one.
- Transactions: produce and consumer offsets commit together, or not at all (read-committed consumers never
  see aborted writes).
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Self

from algorun.bus.batch import Failures
from algorun.bus.errors import BusError
from algorun.bus.types import (
    Headers,
    Message,
    OutRecord,
    PartitionLag,
    Receipt,
    TopicInfo,
    TopicPartition,
    TopicSpec,
)

PartitionsCallback = Callable[[list[TopicPartition]], None]
"""Called on the event loop with the partitions just assigned or revoked."""


class Producer(abc.ABC):
    """Writes messages; one per component is enough (it is safe to share between tasks)."""

    @abc.abstractmethod
    def produce(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> Awaitable[Receipt]:
        """Enqueue a message now and return an awaitable of its delivery (raises a `BusError` on failure).

        Inside a transaction the awaitable resolves when the transaction commits (fails if it aborts), and a
        write the client refuses at once (e.g. `MessageTooLarge`) raises here instead: it never joined the
        transaction, which would otherwise commit without it and report it only afterwards.
        """

    def produce_many(self, messages: Sequence[OutRecord]) -> Awaitable[Failures]:
        """Enqueue `messages` now, in order, and return one awaitable of their outcome.

        A message is `(topic, value, key, headers, partition)`: a plain tuple or an `OutMessage`.

        It resolves once the broker (or the local log) acknowledged or refused every message, with the
        refused ones: `{index: BusError}`, empty when all were stored. One failure does not hide the others, so
        a caller re-sends exactly what failed. Nothing is built per stored message (no `Receipt`): a batch is
        the throughput path, and its callers only need to know what to send again. Inside a transaction the
        outcome is known when the transaction commits or aborts.
        This default runs `produce` per message; backends override it to track the batch as one unit.
        """
        produce = self.produce
        futures = [produce(t, v, key=k, headers=h, partition=p) for t, v, k, h, p in messages]
        return failures_of(futures)

    async def send(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> Receipt:
        """Produce one message and wait for its acknowledgement."""
        return await self.produce(topic, value, key=key, headers=headers, partition=partition)

    @abc.abstractmethod
    async def flush(self) -> None:
        """Wait until every message produced so far is acknowledged (or failed)."""

    @property
    @abc.abstractmethod
    def in_flight(self) -> int:
        """Messages produced but not yet acknowledged: callers use it to bound their own backlog."""

    # Transactions. Available when the producer was created with a transactional id.
    @abc.abstractmethod
    async def begin_transaction(self) -> None: ...

    @abc.abstractmethod
    async def send_offsets_to_transaction(self, consumer: Consumer, offsets: Mapping[TopicPartition, int]) -> None:
        """Make committing `offsets` for `consumer`'s group part of the current transaction."""

    @abc.abstractmethod
    async def commit_transaction(self) -> None: ...

    @abc.abstractmethod
    async def abort_transaction(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None:
        """Drain: wait for every pending delivery, then release the client."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


async def failures_of(futures: list[Awaitable[Receipt]]) -> Failures:
    results = await asyncio.gather(*futures, return_exceptions=True)
    failures: Failures = {}
    for i, r in enumerate(results):
        if isinstance(r, BaseException):
            if not isinstance(r, BusError):
                raise r
            failures[i] = r
    return failures


class Consumer(abc.ABC):
    """A member of a consumer group reading some topics; used from one task."""

    group: str | None

    @abc.abstractmethod
    async def getmany(self, max_messages: int = 500, max_wait: float = 1.0) -> list[Message]:
        """Up to `max_messages` messages, waiting at most `max_wait` seconds for the first one."""

    async def __aiter__(self) -> AsyncIterator[Message]:
        while True:
            for message in await self.getmany():
                yield message

    @abc.abstractmethod
    def store(self, offsets: Mapping[TopicPartition, int] | Iterable[Message]) -> None:
        """Mark work processed: messages, or next offsets per partition. Committed by commit/close/revoke."""

    @abc.abstractmethod
    async def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        """Commit `offsets` (next offset to read per partition), or everything stored so far.

        Offsets of partitions this member no longer owns are skipped: their new owner decides.
        """

    @abc.abstractmethod
    async def committed(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int | None]:
        """The group's committed offsets."""

    @abc.abstractmethod
    def pause(self, partitions: Iterable[TopicPartition]) -> None: ...

    @abc.abstractmethod
    def resume(self, partitions: Iterable[TopicPartition]) -> None: ...

    @abc.abstractmethod
    def assignment(self) -> set[TopicPartition]:
        """Partitions this member currently owns."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Commit what is stored, leave the group (handing partitions to the other members), release."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


class Bus(abc.ABC):
    """A connection to one data plane (a Kafka cluster or a local log file)."""

    url: str

    @property
    @abc.abstractmethod
    def supports_transactions(self) -> bool: ...

    @abc.abstractmethod
    async def create_topics(self, topics: Sequence[TopicSpec], *, exist_ok: bool = True) -> None: ...

    @abc.abstractmethod
    async def delete_topics(self, names: Sequence[str]) -> None: ...

    @abc.abstractmethod
    async def list_topics(self) -> dict[str, TopicInfo]: ...

    @abc.abstractmethod
    def producer(self, *, transactional_id: str | None = None) -> Producer: ...

    @abc.abstractmethod
    def consumer(
        self,
        group: str | None,
        topics: Sequence[str],
        *,
        from_beginning: bool = True,
        on_assign: PartitionsCallback | None = None,
        on_revoke: PartitionsCallback | None = None,
    ) -> Consumer:
        """Join `group` and read `topics`. `group=None` reads every partition without a group (a `tail`).

        `from_beginning` applies when the group has no committed offset (Kafka's auto.offset.reset).
        Consumers read committed data only: messages of aborted or open transactions are never returned.
        """

    @abc.abstractmethod
    async def lag(self, group: str, topics: Sequence[str]) -> dict[TopicPartition, PartitionLag]:
        """Backlog of `group` on every partition of `topics` (for a live view or autoscaling)."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
