"""The local backend: the `Bus` interface over one SQLite log file (see `store.py`), for `algorun run`.

Each producer and consumer owns a connection and one worker thread; the event loop hands it whole batches, so
the cost of a thread hop is paid per batch, never per message. Producing is group-committed: messages produced
while a write is in progress go together in the next transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar
from urllib.parse import parse_qs, urlsplit

from algorun.bus.batch import BatchOutcomes, Failures
from algorun.bus.errors import BusClosed, BusError, ConfigError, TransactionError
from algorun.bus.interface import Bus, Consumer, PartitionsCallback, Producer
from algorun.bus.local.codec import encode_headers
from algorun.bus.local.notify import Listener, Poker
from algorun.bus.local.store import Record, Store
from algorun.bus.types import (
    Headers,
    Message,
    OutRecord,
    PartitionLag,
    Receipt,
    TopicInfo,
    TopicPartition,
    TopicSpec,
    store_offsets,
)

P = ParamSpec("P")
T = TypeVar("T")

MAX_BATCH = 5000
HEARTBEAT_S = 0.3
RETENTION_EVERY_S = 5.0
"""How often a consumer enforces retention.ms / retention.messages (producers do it as they write)."""
SESSION_MS = 10_000
FALLBACK_POLL_S = 1.0


class _Worker:
    """One SQLite connection and the one thread that uses it."""

    def __init__(self, path: str, synchronous: str, name: str) -> None:
        self.store = Store(path, synchronous=synchronous)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))
        except sqlite3.Error as e:
            raise BusError(f"local bus: {self.store.path}: {e}", retriable=True) from e

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self.store.close)
        self._pool.shutdown(wait=False)


class LocalBus(Bus):
    """The `Bus` on one SQLite file: every producer and consumer it makes opens its own connection on its own
    worker thread, so several processes of `algorun run` share the log through the file alone."""

    def __init__(self, path: str, *, synchronous: str = "NORMAL") -> None:
        self.path = path
        self.url = f"local://{path}"
        self.synchronous = synchronous
        self._admin = _Worker(path, synchronous, "algorun-bus-admin")
        self._names = itertools.count()

    @classmethod
    def from_url(cls, url: str) -> LocalBus:
        parts = urlsplit(url)
        path = (parts.netloc + parts.path) if parts.netloc else parts.path
        if not path:
            raise ConfigError(f"local bus URL {url!r} has no file path (e.g. local:///var/lib/algorun/log.db)")
        query = parse_qs(parts.query)
        return cls(path, synchronous=query.get("synchronous", ["normal"])[-1])

    @property
    def supports_transactions(self) -> bool:
        return True

    async def create_topics(self, topics: Sequence[TopicSpec], *, exist_ok: bool = True) -> None:
        await self._admin.run(self._admin.store.create_topics, topics, exist_ok)

    async def delete_topics(self, names: Sequence[str]) -> None:
        await self._admin.run(self._admin.store.delete_topics, names)

    async def list_topics(self) -> dict[str, TopicInfo]:
        return await self._admin.run(self._admin.store.list_topics)

    async def lag(self, group: str, topics: Sequence[str]) -> dict[TopicPartition, PartitionLag]:
        return await self._admin.run(self._admin.store.lag, group, topics)

    def producer(self, *, transactional_id: str | None = None) -> LocalProducer:
        return LocalProducer(self, transactional_id)

    def consumer(
        self,
        group: str | None,
        topics: Sequence[str],
        *,
        from_beginning: bool = True,
        on_assign: PartitionsCallback | None = None,
        on_revoke: PartitionsCallback | None = None,
    ) -> LocalConsumer:
        return LocalConsumer(self, group, topics, from_beginning, on_assign, on_revoke)

    def _worker(self, role: str) -> _Worker:
        return _Worker(self.path, self.synchronous, f"algorun-bus-{role}-{next(self._names)}")

    async def close(self) -> None:
        await self._admin.close()


class LocalProducer(Producer):
    """Appends to the local log, group-committed: what is produced while a write is in progress goes in the next
    transaction, and a message's awaitable resolves once its transaction is committed."""

    def __init__(self, bus: LocalBus, transactional_id: str | None) -> None:
        self._loop = asyncio.get_running_loop()
        self._worker = bus._worker("producer")
        self._poker = Poker(bus.path)
        self._pending: list[tuple[Record, _Sink]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._in_flight = 0
        self._closed = False
        self.transactional_id = transactional_id
        self._txn: list[tuple[Record, asyncio.Future[Receipt]]] | None = None
        self._txn_offsets: tuple[str, str | None, dict[TopicPartition, int]] | None = None

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def produce(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> asyncio.Future[Receipt]:
        if self._closed:
            raise BusClosed("local bus: producer is closed")
        fut: asyncio.Future[Receipt] = self._loop.create_future()
        record: Record = (topic, partition, key, value, encode_headers(headers))
        if self._txn is not None:
            self._txn.append((record, fut))
            return fut
        self._pending.append((record, fut))
        self._in_flight += 1
        if self._flusher is None:
            self._idle.clear()
            self._flusher = self._loop.create_task(self._flush_loop())
        return fut

    def produce_many(self, messages: Sequence[OutRecord]) -> Awaitable[Failures]:
        """The batch joins the pending group commit with one `BatchOutcomes` instead of a future per message."""
        if self._closed:
            raise BusClosed("local bus: producer is closed")
        if self._txn is not None:
            return super().produce_many(messages)  # buffered until the transaction commits
        fut: asyncio.Future[Failures] = self._loop.create_future()
        batch = BatchOutcomes(fut, messages)
        if not messages:
            return fut
        self._pending.extend(
            ((topic, partition, key, value, encode_headers(headers)), (batch, i))
            for i, (topic, value, key, headers, partition) in enumerate(messages)
        )
        self._in_flight += len(messages)
        if self._flusher is None:
            self._idle.clear()
            self._flusher = self._loop.create_task(self._flush_loop())
        return fut

    def _write(
        self,
        records: list[Record],
        offsets: tuple[str, str | None, dict[TopicPartition, int]] | None = None,
        atomic: bool = False,
    ) -> list[Receipt | BusError]:
        results = self._worker.store.append(records, offsets, atomic=atomic)
        self._poker.poke()
        self._worker.store.maybe_enforce_retention()
        return results

    async def _flush_loop(self) -> None:
        try:
            while self._pending:
                batch = self._pending[:MAX_BATCH]
                del self._pending[:MAX_BATCH]
                try:
                    results = await self._worker.run(self._write, [r for r, _ in batch])
                except BusError as e:
                    for _, sink in batch:
                        _settle(sink, e)
                else:
                    for (_, sink), res in zip(batch, results, strict=True):
                        _settle(sink, res)
                finally:
                    self._in_flight -= len(batch)
        finally:
            self._flusher = None
            self._idle.set()

    async def flush(self) -> None:
        await self._idle.wait()

    # ---- transactions: buffered in memory, written in one SQLite transaction on commit ----

    def _require_txn(self) -> list[tuple[Record, asyncio.Future[Receipt]]]:
        if self._txn is None:
            raise TransactionError("local bus: no transaction in progress (call begin_transaction)")
        return self._txn

    async def begin_transaction(self) -> None:
        if self.transactional_id is None:
            raise TransactionError("local bus: producer was created without a transactional_id")
        if self._txn is not None:
            raise TransactionError("local bus: a transaction is already in progress")
        await self.flush()
        self._txn = []
        self._txn_offsets = None

    async def send_offsets_to_transaction(self, consumer: Consumer, offsets: Mapping[TopicPartition, int]) -> None:
        self._require_txn()
        if not isinstance(consumer, LocalConsumer) or consumer.group is None:
            raise TransactionError("local bus: offsets need a LocalConsumer of a group on the same log")
        if self._txn_offsets is None:
            self._txn_offsets = (consumer.group, consumer.member, {})
        elif self._txn_offsets[0] != consumer.group:
            raise TransactionError("local bus: one transaction commits offsets of one group")
        self._txn_offsets[2].update(offsets)
        consumer._forget_stored(offsets)

    async def commit_transaction(self) -> None:
        batch = self._require_txn()
        offsets = self._txn_offsets
        self._txn, self._txn_offsets = None, None
        try:
            results = await self._worker.run(self._write, [r for r, _ in batch], offsets, True)
        except BusError as e:
            err = TransactionError(f"local bus: transaction aborted: {e}", retriable=e.retriable)
            for _, fut in batch:
                fut.set_exception(err)
            raise err from e
        for (_, fut), res in zip(batch, results, strict=True):
            assert isinstance(res, Receipt)
            fut.set_result(res)

    async def abort_transaction(self) -> None:
        batch = self._require_txn()
        self._txn, self._txn_offsets = None, None
        err = TransactionError("local bus: transaction aborted")
        for _, fut in batch:
            fut.set_exception(err)
            fut.exception()  # retrieved: an abort is the caller's own decision

    async def close(self) -> None:
        if self._closed:
            return
        if self._txn is not None:
            await self.abort_transaction()
        await self.flush()
        self._closed = True
        self._poker.close()
        await self._worker.close()


_Sink = asyncio.Future[Receipt] | tuple[BatchOutcomes, int]
"""Where a pending record's outcome goes: its own future (`produce`) or a slot of a batch (`produce_many`)."""


def _settle(sink: _Sink, outcome: Receipt | BusError) -> None:
    if isinstance(sink, tuple):
        sink[0].settle(sink[1], outcome if isinstance(outcome, BusError) else None)
    elif sink.done():
        return
    elif isinstance(outcome, BusError):
        sink.set_exception(outcome)
    else:
        sink.set_result(outcome)


class LocalConsumer(Consumer):
    """A member of a group on the local log: its partitions come from the store's membership (heartbeats and
    session expiry, as in Kafka), and a commit covers only partitions it still owns."""

    def __init__(
        self,
        bus: LocalBus,
        group: str | None,
        topics: Sequence[str],
        from_beginning: bool,
        on_assign: PartitionsCallback | None,
        on_revoke: PartitionsCallback | None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self.group = group
        self.topics = list(topics)
        self.member = uuid.uuid4().hex
        self._from_beginning = from_beginning
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._worker = bus._worker("consumer")
        self._positions: dict[TopicPartition, int] = {}
        self._paused: set[TopicPartition] = set()
        self._stored: dict[TopicPartition, int] = {}
        self._wake = asyncio.Event()
        self._listener = Listener(bus.path, self._wake.set)
        self._poker = Poker(bus.path)
        self._last_sync = -1e9
        self._last_retention = self._loop.time()  # the first enforcement waits a full period
        self._rotation = 0
        self._closed = False

    # ---- membership ----

    async def _sync(self, leave: bool = False) -> None:
        store = self._worker.store
        if self.group is None:
            tps = [] if leave else await self._worker.run(store.partitions_of, self.topics)
            new = [tp for tp in tps if tp not in self._positions]
            starts = await self._worker.run(store.start_positions, new, self._from_beginning) if new else {}
            gone = sorted(set(self._positions) - set(tps))
            assigned, revoked = sorted(starts), gone
        else:
            result = await self._worker.run(
                store.sync_group,
                self.group,
                self.member,
                self.topics,
                dict(self._stored),
                session_ms=SESSION_MS,
                from_beginning=self._from_beginning,
                leave=leave,
            )
            assigned, revoked, starts = result.assigned, result.revoked, result.positions
        self._last_sync = self._loop.time()
        if self._last_sync - self._last_retention >= RETENTION_EVERY_S:
            # Producers enforce retention as they write; a log nobody writes to any more still ages out.
            self._last_retention = self._last_sync
            await self._worker.run(store.enforce_retention)
        for tp in revoked:
            self._positions.pop(tp, None)
            self._stored.pop(tp, None)
            self._paused.discard(tp)
        self._positions.update(starts)
        if revoked:
            self._poker.poke()  # the new owner can claim them now
            if self._on_revoke is not None:
                self._on_revoke(list(revoked))
        if assigned and self._on_assign is not None:
            self._on_assign(list(assigned))

    def assignment(self) -> set[TopicPartition]:
        return set(self._positions)

    # ---- reading ----

    async def getmany(self, max_messages: int = 500, max_wait: float = 1.0) -> list[Message]:
        deadline = self._loop.time() + max_wait
        while True:
            if self._closed:
                raise BusClosed("local bus: consumer is closed")
            now = self._loop.time()
            if now - self._last_sync >= HEARTBEAT_S:
                await self._sync()
            self._wake.clear()
            items = [(tp, pos) for tp, pos in self._positions.items() if tp not in self._paused]
            if items:
                self._rotation = (self._rotation + 1) % len(items)
                items = items[self._rotation :] + items[: self._rotation]
                fetched = await self._worker.run(self._worker.store.fetch, dict(items), max_messages)
                out = [m for m in fetched if m.tp in self._positions and m.tp not in self._paused]
                if out:
                    positions = self._positions
                    for m in out:
                        positions[m.tp] = m.offset + 1
                    return out
            remaining = deadline - self._loop.time()
            if remaining <= 0:
                return []
            wait = min(remaining, FALLBACK_POLL_S, max(0.0, self._last_sync + HEARTBEAT_S - self._loop.time()))
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._wake.wait()

    # ---- progress ----

    def store(self, offsets: Mapping[TopicPartition, int] | Iterable[Message]) -> None:
        store_offsets(self._stored, offsets)

    def _forget_stored(self, offsets: Mapping[TopicPartition, int]) -> None:
        for tp, off in offsets.items():
            if self._stored.get(tp, -1) <= off:
                self._stored.pop(tp, None)

    async def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        if self.group is None:
            raise ConfigError("local bus: a consumer without a group cannot commit")
        chosen = dict(self._stored if offsets is None else offsets)
        chosen = {tp: off for tp, off in chosen.items() if tp in self._positions}
        if not chosen:
            return
        await self._worker.run(self._worker.store.commit_offsets, self.group, self.member, chosen)
        self._forget_stored(chosen)

    async def committed(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int | None]:
        if self.group is None:
            return dict.fromkeys(partitions)
        return await self._worker.run(self._worker.store.committed, self.group, partitions)

    def pause(self, partitions: Iterable[TopicPartition]) -> None:
        self._paused.update(tp for tp in partitions if tp in self._positions)

    def resume(self, partitions: Iterable[TopicPartition]) -> None:
        self._paused.difference_update(partitions)
        self._wake.set()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._sync(leave=True)
        finally:
            self._listener.close()
            self._poker.close()
            await self._worker.close()
