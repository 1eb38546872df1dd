"""The endpoint's write-ahead log: accepted messages on local disk, in order, until Kafka acknowledges them.

One SQLite table, one row per message: `(seq, topic, key, value, headers)`. `seq` is assigned by the publisher
when it *accepts* a message, so a message that first went straight to Kafka and failed is logged under its
original place in the order, and is forwarded before anything accepted after it. Rows are deleted once Kafka
acknowledged them, so the file holds only the backlog and its size can be bounded.

Each accepted message is its own row, whatever its payload (no key derived from the content, so identical
payloads stay two messages), with its key and headers (a staged part stays staged after forwarding), and every
write of a batch is committed. Why not the local bus log: it keeps what was read until a retention limit, and a
retention limit could delete messages not yet forwarded during a long outage.

Records Kafka refuses for good (too large, unknown topic, not authorised) would otherwise stay first in the log
and be retried forever: the forwarder moves them to a second table, `dead_letter` (same columns plus `error` and
`failed_ms`), in the same file. They are kept, not deleted: each was answered 202, so it is the operator's to
inspect, replay or drop (see docs/endpoint.md). Their bytes count toward the size limit, so they cannot fill the
disk unnoticed either.

Writes are group-committed on one worker thread (`synchronous=FULL`: the commit is fsynced before the client is
answered); readers and the deleter use the same thread, so the connection is never shared between threads.
"""

from __future__ import annotations

import asyncio
import sqlite3
import struct
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from algorun.bus.types import Headers

SCHEMA = """
CREATE TABLE IF NOT EXISTS wal(
    seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, key BLOB, value BLOB NOT NULL, headers BLOB NOT NULL,
    size INTEGER NOT NULL, ts_ms INTEGER NOT NULL)
"""
DEAD_LETTER_SCHEMA = """
CREATE TABLE IF NOT EXISTS dead_letter(
    seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, key BLOB, value BLOB NOT NULL, headers BLOB NOT NULL,
    size INTEGER NOT NULL, ts_ms INTEGER NOT NULL, error TEXT NOT NULL, failed_ms INTEGER NOT NULL)
"""
MAX_WRITE_BATCH = 2000
T = TypeVar("T")


class LogError(Exception):
    """The log could not store or read a record (disk full, file unreadable)."""


@dataclass(frozen=True, slots=True)
class Record:
    """One accepted message in the log, under the sequence number that gives its place in the order."""

    seq: int
    topic: str
    key: bytes | None
    value: bytes
    headers: Headers
    ts_ms: int

    @property
    def size(self) -> int:
        return record_size(self.key, self.value, self.headers)


def record_size(key: bytes | None, value: bytes, headers: Headers) -> int:
    return len(value) + len(key or b"") + sum(len(k) + len(v) for k, v in headers)


def encode_headers(headers: Headers) -> bytes:
    """Length-prefixed `(name, value)` pairs: order and repeated names are kept, values stay raw bytes."""
    parts = [struct.pack(">I", len(headers))]
    for name, value in headers:
        raw = name.encode()
        parts.append(struct.pack(">II", len(raw), len(value)))
        parts.append(raw)
        parts.append(value)
    return b"".join(parts)


def decode_headers(data: bytes) -> Headers:
    (count,) = struct.unpack_from(">I", data, 0)
    pos = 4
    out: Headers = []
    for _ in range(count):
        name_len, value_len = struct.unpack_from(">II", data, pos)
        pos += 8
        name = data[pos : pos + name_len].decode()
        pos += name_len
        out.append((name, data[pos : pos + value_len]))
        pos += value_len
    return out


class _Db:
    """The synchronous side, used from the worker thread only."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(SCHEMA)
        self.db.execute(DEAD_LETTER_SCHEMA)

    def stats(self) -> tuple[int, int, int]:
        count, size, top = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(size),0), COALESCE(MAX(seq),0) FROM wal"
        ).fetchone()
        return int(count), int(size), int(top)

    def dead_stats(self) -> tuple[int, int, int]:
        count, size, top = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(size),0), COALESCE(MAX(seq),0) FROM dead_letter"
        ).fetchone()
        return int(count), int(size), int(top)

    def append(self, rows: list[tuple[int, str, bytes | None, bytes, bytes, int, int]]) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.executemany(
                "INSERT OR REPLACE INTO wal(seq, topic, key, value, headers, size, ts_ms) VALUES (?,?,?,?,?,?,?)", rows
            )
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    def read(self, after: int, below: int | None, limit: int) -> list[Record]:
        rows = self.db.execute(
            "SELECT seq, topic, key, value, headers, ts_ms FROM wal WHERE seq > ? AND seq < ? ORDER BY seq LIMIT ?",
            (after, below if below is not None else (1 << 62), limit),
        ).fetchall()
        return [Record(s, t, k, bytes(v), decode_headers(bytes(h)), ts) for s, t, k, v, h, ts in rows]

    def delete(self, seqs: Sequence[int]) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.executemany("DELETE FROM wal WHERE seq = ?", [(s,) for s in seqs])
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    def dead_letter(self, rows: list[tuple[str, int, int]]) -> None:
        """Move `(error, failed_ms, seq)` rows from the queue to the dead-letter table, in one transaction."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.executemany(
                "INSERT OR REPLACE INTO dead_letter(seq, topic, key, value, headers, size, ts_ms, error, failed_ms)"
                " SELECT seq, topic, key, value, headers, size, ts_ms, ?, ? FROM wal WHERE seq = ?",
                rows,
            )
            self.db.executemany("DELETE FROM wal WHERE seq = ?", [(seq,) for _, _, seq in rows])
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.db.close()


class WriteAheadLog:
    """Async facade: `append` resolves once the record is committed to disk; `read`/`delete` for the forwarder.

    `count` and `bytes` track the backlog (for the size limit and the depth metric) without scanning the table;
    `dead_count` and `dead_bytes` the records moved to the dead-letter table.
    """

    def __init__(self, path: str | Path, *, max_bytes: int | None = None) -> None:
        self.path = str(path)
        self.max_bytes = max_bytes
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="algorun-endpoint-wal")
        self._db: _Db | None = None
        self._pending: list[tuple[tuple[int, str, bytes | None, bytes, bytes, int, int], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.count = 0
        self.bytes = 0
        self.dead_count = 0
        self.dead_bytes = 0
        self.last_seq = 0
        self.appending = 0
        """Records handed to `append` whose commit has not finished (they may not be readable yet)."""

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, fn, *args)
        except sqlite3.Error as e:
            raise LogError(f"write-ahead log {self.path}: {e}") from e

    async def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = await asyncio.get_running_loop().run_in_executor(self._pool, _Db, self.path)
        except sqlite3.Error as e:
            raise LogError(f"cannot open the write-ahead log {self.path}: {e}") from e
        self.count, self.bytes, self.last_seq = await self._run(self._db.stats)
        # Numbering goes on after the dead letters too: a reused number would replace one of them.
        self.dead_count, self.dead_bytes, dead_top = await self._run(self._db.dead_stats)
        self.last_seq = max(self.last_seq, dead_top)

    def full(self, incoming: int = 0) -> bool:
        """Would `incoming` more bytes pass the size limit? Dead letters count: they are on the same disk."""
        return self.max_bytes is not None and self.bytes + self.dead_bytes + incoming > self.max_bytes

    def describe_fill(self) -> str:
        """What fills the log, for error messages and readiness."""
        dead = f", {self.dead_bytes} in {self.dead_count} dead letters" if self.dead_count else ""
        return f"{self.bytes} bytes waiting for the broker{dead}"

    def append(
        self, seq: int, topic: str, key: bytes | None, value: bytes, headers: Headers, ts_ms: int
    ) -> asyncio.Future[None]:
        """Queue one record; the future resolves when it is durably committed (fails with `LogError`)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        size = record_size(key, value, headers)
        self._pending.append(((seq, topic, key, value, encode_headers(headers), size, ts_ms), fut))
        self.appending += 1
        if self._writer is None:
            self._writer = loop.create_task(self._write_loop())
        return fut

    async def _write_loop(self) -> None:
        assert self._db is not None
        try:
            while self._pending:
                batch = self._pending[:MAX_WRITE_BATCH]
                del self._pending[:MAX_WRITE_BATCH]
                rows = [row for row, _ in batch]
                try:
                    await self._run(self._db.append, rows)
                except LogError as e:
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(e)
                else:
                    self.count += len(rows)
                    self.bytes += sum(r[5] for r in rows)
                    self.last_seq = max(self.last_seq, max(r[0] for r in rows))
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_result(None)
                finally:
                    self.appending -= len(batch)
        finally:
            self._writer = None

    async def read(self, after: int, below: int | None, limit: int = 500) -> list[Record]:
        """Records with `after < seq < below`, in seq order."""
        assert self._db is not None
        return await self._run(self._db.read, after, below, limit)

    async def delete(self, records: Sequence[Record]) -> None:
        assert self._db is not None
        if not records:
            return
        await self._run(self._db.delete, [r.seq for r in records])
        self.count -= len(records)
        self.bytes -= sum(r.size for r in records)

    async def dead_letter(self, refused: Sequence[tuple[Record, str]], failed_ms: int) -> None:
        """Move `(record, error)` pairs out of the queue into the dead-letter table (they stop blocking it)."""
        assert self._db is not None
        if not refused:
            return
        await self._run(self._db.dead_letter, [(error, failed_ms, r.seq) for r, error in refused])
        moved = sum(r.size for r, _ in refused)
        self.count -= len(refused)
        self.bytes -= moved
        self.dead_count += len(refused)
        self.dead_bytes += moved

    async def close(self) -> None:
        """Wait for pending writes, then close the file; the worker thread is released even if closing fails."""
        try:
            while self._writer is not None:
                await asyncio.shield(self._writer)
            if self._db is not None:
                db, self._db = self._db, None
                await self._run(db.close)
        finally:
            self._pool.shutdown(wait=False)
