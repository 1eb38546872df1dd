"""Fakes of the bus interface (`algorun.bus.interface`) for unit tests of pure logic around a producer.

`FakeProducer` decides each write's outcome with a rule (`refuse`), records what it was given in call order,
and keeps the transaction calls, so a test asserts what was written, refused, written again and committed without
a broker. Integration tests use the real backends (tests/support/kafka.py, the local bus).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from algorun.bus.batch import Failures
from algorun.bus.errors import BusError
from algorun.bus.interface import Consumer, Producer
from algorun.bus.types import Headers, OutRecord, Receipt, TopicPartition

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
