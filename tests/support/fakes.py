"""Fakes of the bus interface (`algorun.bus.interface`), the only ones in the suite, for unit tests of pure logic
around a producer, a consumer or a bus. Integration tests use the real backends (tests/support/kafka.py, the local
bus) instead.

- `FakeProducer` decides each write's outcome with a rule (`refuse`), records what it was given in call order, and
  keeps the transaction calls: a test asserts what was written, refused, written again and committed.
- `SwitchedProducer` is up, down or holding as the test switches it (the endpoint's publishing and readiness).
- `OneTopicBus` knows one topic and hands out one producer (a whole endpoint over a `SwitchedProducer`).
- `ScriptedSender` answers each `send` with the next scripted error or acknowledgement (dead letters).
- `PausableConsumer` owns partitions and records which are paused (backpressure).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from algorun.bus.batch import Failures
from algorun.bus.errors import BrokerUnreachable, BusError
from algorun.bus.interface import Bus, Consumer, PartitionsCallback, Producer
from algorun.bus.types import Headers, OutRecord, PartitionLag, Receipt, TopicInfo, TopicPartition, TopicSpec

Refusal = Callable[[OutRecord], BusError | None]
"""A write's outcome: the error it is refused with, or None when it is acknowledged."""


def acknowledge_all(_: OutRecord) -> BusError | None:
    return None


@dataclass
class FakeProducer(Producer):
    """A producer whose writes are acknowledged or refused by `refuse` (asked once per write, in order).

    - `produce_many` resolves on the next loop iteration with the refused indexes; `batches` keeps each call's
      records, `acknowledged` every acknowledged record in order.
    - `produce` outside a transaction resolves the same way. Inside a transaction (`begin_transaction`), a write
      that `refuse_at_once` refuses raises at once (as the client does for a write too large); the others are
      recorded in `in_transaction` and resolve when the transaction commits.
    - `events` lists the transaction calls in order ("begin", "offsets", "commit", "abort").
    """

    refuse: Refusal = acknowledge_all
    refuse_at_once: Refusal = acknowledge_all
    batches: list[list[OutRecord]] = field(default_factory=list)
    acknowledged: list[OutRecord] = field(default_factory=list)
    in_transaction: list[OutRecord] = field(default_factory=list)
    committed: list[OutRecord] = field(default_factory=list)
    offsets: list[dict[TopicPartition, int]] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    closed: bool = False
    _transaction: bool = False
    _pending: list[asyncio.Future[Receipt]] = field(default_factory=list)

    def produce(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> Awaitable[Receipt]:
        record: OutRecord = (topic, value, key, headers, partition)
        fut: asyncio.Future[Receipt] = asyncio.get_running_loop().create_future()
        if self._transaction:
            error = self.refuse_at_once(record)
            if error is not None:
                raise error
            self.in_transaction.append(record)
            self._pending.append(fut)
            return fut
        error = self.refuse(record)
        if error is None:
            self.acknowledged.append(record)
            fut.get_loop().call_soon(_resolve, fut, Receipt(topic, 0, len(self.acknowledged) - 1))
        else:
            fut.get_loop().call_soon(_fail, fut, error)
        return fut

    def produce_many(self, messages: Sequence[OutRecord]) -> Awaitable[Failures]:
        if self.closed:
            raise BusError("producer closed")
        records = list(messages)
        self.batches.append(records)
        failures: Failures = {}
        for i, record in enumerate(records):
            error = self.refuse(record)
            if error is None:
                self.acknowledged.append(record)
            else:
                failures[i] = error
        fut: asyncio.Future[Failures] = asyncio.get_running_loop().create_future()
        fut.get_loop().call_soon(_resolve, fut, failures)
        return fut

    async def flush(self) -> None:
        await asyncio.sleep(0)

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    async def begin_transaction(self) -> None:
        self.events.append("begin")
        self._transaction = True
        self.in_transaction = []

    async def send_offsets_to_transaction(self, consumer: Consumer, offsets: Mapping[TopicPartition, int]) -> None:
        self.events.append("offsets")
        self.offsets.append(dict(offsets))

    async def commit_transaction(self) -> None:
        self.events.append("commit")
        self._transaction = False
        self.committed.extend(self.in_transaction)
        for i, fut in enumerate(self._pending):
            _resolve(fut, Receipt("", 0, i))
        self._pending = []

    async def abort_transaction(self) -> None:
        self.events.append("abort")
        self._transaction = False
        for fut in self._pending:
            _fail(fut, BusError("transaction aborted"))
        self._pending = []

    async def close(self) -> None:
        self.closed = True


def _resolve(fut: asyncio.Future[Any], value: object) -> None:
    if not fut.done():
        fut.set_result(value)


def _fail(fut: asyncio.Future[Any], error: BaseException) -> None:
    if not fut.done():
        fut.set_exception(error)


class SwitchedProducer(Producer):
    """A producer the test switches: while `up`, each write is acknowledged at once and recorded in `sent`; while
    down, it fails with `failure`; while `hold`, it waits in `held` until the test settles it (the endpoint's
    publishing policy and readiness are reached at will this way)."""

    def __init__(self) -> None:
        self.up = True
        self.hold = False
        self.sent: list[tuple[str, bytes, bytes | None, Headers | None]] = []
        self.held: list[asyncio.Future[Receipt]] = []
        self.failure: Exception = BrokerUnreachable("broker down")
        self.poison_refusal: Exception | None = None
        """When set: every value starting with b"poison" is refused with it at once (as librdkafka refuses size)."""
        self.closed = False
        """Whether `close` was called (the endpoint closes its producer last, after the log)."""

    def produce(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> asyncio.Future[Receipt]:
        fut: asyncio.Future[Receipt] = asyncio.get_running_loop().create_future()
        if self.poison_refusal is not None and value.startswith(b"poison"):
            fut.set_exception(self.poison_refusal)
        elif self.hold:
            self.held.append(fut)
        elif self.up:
            self.sent.append((topic, value, key, headers))
            fut.set_result(Receipt(topic, 0, len(self.sent) - 1))
        else:
            fut.set_exception(self.failure)
        return fut

    async def flush(self) -> None:
        """Until every held message is settled, including ones produced meanwhile (as the Kafka producer does)."""
        while any(not f.done() for f in self.held):
            await asyncio.wait([f for f in self.held if not f.done()])

    @property
    def in_flight(self) -> int:
        return len(self.held)

    async def begin_transaction(self) -> None: ...
    async def send_offsets_to_transaction(self, consumer: Consumer, offsets: Mapping[TopicPartition, int]) -> None: ...
    async def commit_transaction(self) -> None: ...
    async def abort_transaction(self) -> None: ...

    async def close(self) -> None:
        self.closed = True


class OneTopicBus(Bus):
    """Knows one topic (one partition) and hands out one producer; nothing else is used by the endpoint."""

    url = "fake://"

    def __init__(self, producer: SwitchedProducer, topic: str) -> None:
        self._producer = producer
        self.topic = topic

    @property
    def supports_transactions(self) -> bool:
        return False

    async def create_topics(self, topics: Sequence[TopicSpec], *, exist_ok: bool = True) -> None:
        raise NotImplementedError

    async def delete_topics(self, names: Sequence[str]) -> None:
        raise NotImplementedError

    async def list_topics(self) -> dict[str, TopicInfo]:
        return {self.topic: TopicInfo(self.topic, 1)}

    def producer(self, *, transactional_id: str | None = None) -> SwitchedProducer:
        return self._producer

    def consumer(
        self,
        group: str | None,
        topics: Sequence[str],
        *,
        from_beginning: bool = True,
        on_assign: PartitionsCallback | None = None,
        on_revoke: PartitionsCallback | None = None,
    ) -> Consumer:
        raise NotImplementedError

    async def lag(self, group: str, topics: Sequence[str]) -> dict[TopicPartition, PartitionLag]:
        raise NotImplementedError

    async def close(self) -> None:
        pass


class ScriptedSender:
    """Answers each send with the next of `errors` (None: acknowledged) and records what it was asked."""

    def __init__(self, *errors: BusError | None) -> None:
        self.errors = list(errors)
        self.sent: list[tuple[str, bytes, bytes | None, Headers]] = []

    async def send(self, topic: str, value: bytes, *, key: bytes | None = None, headers: Headers | None = None) -> None:
        self.sent.append((topic, value, key, list(headers or [])))
        error = self.errors.pop(0) if self.errors else None
        if error is not None:
            raise error


class PausableConsumer:
    """The part of a consumer that backpressure uses: it owns `owned` and records which of them are paused."""

    def __init__(self, owned: set[TopicPartition]) -> None:
        self.owned = set(owned)
        self.paused: set[TopicPartition] = set()

    def assignment(self) -> set[TopicPartition]:
        return set(self.owned)

    def pause(self, tps: Iterable[TopicPartition]) -> None:
        self.paused |= set(tps)

    def resume(self, tps: Iterable[TopicPartition]) -> None:
        self.paused -= set(tps)
