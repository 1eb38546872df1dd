"""The local log's storage: topics, partitions, messages, group offsets and membership in one SQLite file.

Synchronous on purpose: each async producer or consumer drives one `Store` from its own worker thread, so the
event loop never waits on disk. Several processes share the file; SQLite's WAL mode lets readers run while one
writer appends, and `BEGIN IMMEDIATE` serialises writers, which is what makes offsets dense and unique.

A message's row id packs its partition and offset (`partition_id << 40 | offset`): one B-tree, clustered by
partition then offset, so a fetch is a range scan and an append is an insert at the end.

The module is longer than most (about 460 lines): topics, appends, fetches, offsets and group membership are
one `Store` because they share one connection and its write transactions, and a commit of offsets checks the
membership in the same transaction.
"""

from __future__ import annotations

import itertools
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from algorun.bus.errors import BusError, ConfigError, TopicExists, UnknownTopic
from algorun.bus.local.codec import decode_headers
from algorun.bus.partitioning import partition_for_key
from algorun.bus.types import Message, PartitionLag, Receipt, TopicInfo, TopicPartition, TopicSpec

OFFSET_BITS = 40
MAX_PARTITION_ID = 1 << 23

SCHEMA = """
CREATE TABLE IF NOT EXISTS topics(
    name TEXT PRIMARY KEY, partitions INTEGER NOT NULL,
    retention_ms INTEGER, retention_messages INTEGER, created_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS partitions(
    id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, partition INTEGER NOT NULL,
    start_offset INTEGER NOT NULL DEFAULT 0, end_offset INTEGER NOT NULL DEFAULT 0,
    UNIQUE(topic, partition));
CREATE TABLE IF NOT EXISTS messages(
    id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, key BLOB, value BLOB NOT NULL, headers BLOB);
CREATE TABLE IF NOT EXISTS offsets(
    grp TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL, offset INTEGER NOT NULL,
    PRIMARY KEY(grp, topic, partition)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS members(
    grp TEXT NOT NULL, member TEXT NOT NULL, topics TEXT NOT NULL, expires_ms INTEGER NOT NULL,
    PRIMARY KEY(grp, member)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS owners(
    grp TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL, member TEXT NOT NULL,
    PRIMARY KEY(grp, topic, partition)) WITHOUT ROWID;
"""

Record = tuple[str, int | None, bytes | None, bytes, bytes | None]
"""(topic, explicit partition or None, key, value, encoded headers)"""


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(slots=True)
class _Topic:
    partitions: int
    ids: list[int]
    retention_ms: int | None
    retention_messages: int | None


@dataclass(slots=True)
class SyncResult:
    """Outcome of one group heartbeat: what this member owns now, and what changed."""

    owned: set[TopicPartition]
    assigned: list[TopicPartition]
    revoked: list[TopicPartition]
    positions: dict[TopicPartition, int]


class Store:
    """One connection to the log file. Not thread-safe: use it from one thread at a time."""

    def __init__(self, path: str, *, synchronous: str = "NORMAL", busy_timeout: float = 30.0) -> None:
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ConfigError(f"local bus: synchronous must be off, normal, full or extra, not {synchronous!r}")
        self.path = path
        try:
            self.db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self.db.execute("PRAGMA foreign_keys=OFF")
            self.db.executescript(SCHEMA)
        except sqlite3.Error as e:
            raise ConfigError(f"local bus: cannot open the log {path!r}: {e}") from e
        self._topics: dict[str, _Topic] = {}
        self._rr = itertools.count()
        self._last_retention = 0.0

    def close(self) -> None:
        self.db.close()

    # ---- transactions ----

    def _begin(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def _commit(self) -> None:
        self.db.execute("COMMIT")

    def _rollback(self) -> None:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")

    # ---- topics ----

    def create_topics(self, specs: Sequence[TopicSpec], exist_ok: bool) -> None:
        self._begin()
        try:
            for spec in specs:
                if spec.partitions < 1:
                    raise ConfigError(f"topic {spec.name!r}: partitions must be >= 1, not {spec.partitions}")
                row = self.db.execute("SELECT 1 FROM topics WHERE name=?", (spec.name,)).fetchone()
                if row is not None:
                    if exist_ok:
                        continue
                    raise TopicExists(f"local bus: topic {spec.name!r} already exists")
                retention_ms = _opt_int(spec, "retention.ms")
                retention_messages = _opt_int(spec, "retention.messages")
                self.db.execute(
                    "INSERT INTO topics(name, partitions, retention_ms, retention_messages, created_ms)"
                    " VALUES (?,?,?,?,?)",
                    (spec.name, spec.partitions, retention_ms, retention_messages, now_ms()),
                )
                self.db.executemany(
                    "INSERT INTO partitions(topic, partition) VALUES (?,?)",
                    [(spec.name, p) for p in range(spec.partitions)],
                )
            self._commit()
        except BaseException:
            self._rollback()
            raise

    def delete_topics(self, names: Sequence[str]) -> None:
        self._begin()
        try:
            for name in names:
                for (pid,) in self.db.execute("SELECT id FROM partitions WHERE topic=?", (name,)).fetchall():
                    self.db.execute(
                        "DELETE FROM messages WHERE id>=? AND id<?",
                        (pid << OFFSET_BITS, (pid + 1) << OFFSET_BITS),
                    )
                for table in ("partitions", "offsets", "owners"):
                    self.db.execute(f"DELETE FROM {table} WHERE topic=?", (name,))
                self.db.execute("DELETE FROM topics WHERE name=?", (name,))
                self._topics.pop(name, None)
            self._commit()
        except BaseException:
            self._rollback()
            raise

    def list_topics(self) -> dict[str, TopicInfo]:
        rows = self.db.execute("SELECT name, partitions FROM topics ORDER BY name").fetchall()
        return {name: TopicInfo(name, n) for name, n in rows}

    def _topic(self, name: str, *, refresh: bool = False) -> _Topic:
        t = None if refresh else self._topics.get(name)
        if t is None:
            row = self.db.execute(
                "SELECT partitions, retention_ms, retention_messages FROM topics WHERE name=?", (name,)
            ).fetchone()
            if row is None:
                self._topics.pop(name, None)
                raise UnknownTopic(f"local bus: unknown topic {name!r} (create it first)")
            ids = [
                pid
                for (pid,) in self.db.execute(
                    "SELECT id FROM partitions WHERE topic=? ORDER BY partition", (name,)
                ).fetchall()
            ]
            t = _Topic(row[0], ids, row[1], row[2])
            self._topics[name] = t
        return t

    def partitions_of(self, topics: Iterable[str]) -> list[TopicPartition]:
        out: list[TopicPartition] = []
        for name in topics:
            try:
                t = self._topic(name, refresh=True)
            except UnknownTopic:
                continue
            out.extend(TopicPartition(name, p) for p in range(t.partitions))
        return out

    # ---- produce ----

    def append(
        self,
        records: Sequence[Record],
        offsets: tuple[str, str | None, Mapping[TopicPartition, int]] | None = None,
        *,
        atomic: bool = False,
    ) -> list[Receipt | BusError]:
        """Append `records` (and commit `offsets` = (group, member, offsets)) in one transaction.

        Returns one result per record: its delivery, or the error that rejected it (unknown topic, bad
        partition). Rejected records do not stop the others unless `atomic` (a transaction), where the first
        one is raised and nothing is written. A failure of the SQLite transaction raises.
        """
        results: list[Receipt | BusError] = []
        rows: list[tuple[int, int, bytes | None, bytes, bytes | None]] = []
        ts = now_ms()
        self._begin()
        try:
            ends: dict[int, list[int]] = {}  # partition id -> [end_offset]
            for topic, partition, key, value, headers in records:
                try:
                    t = self._topic(topic)
                except UnknownTopic as e:
                    results.append(e)
                    continue
                if partition is None:
                    partition = partition_for_key(key, t.partitions) if key else next(self._rr) % t.partitions
                elif not 0 <= partition < t.partitions:
                    results.append(UnknownTopic(f"local bus: topic {topic!r} has no partition {partition}"))
                    continue
                pid = t.ids[partition]
                end = ends.get(pid)
                if end is None:
                    row = self.db.execute("SELECT end_offset FROM partitions WHERE id=?", (pid,)).fetchone()
                    if row is None:  # deleted by another process since we cached it
                        self._topics.pop(topic, None)
                        results.append(UnknownTopic(f"local bus: unknown topic {topic!r} (deleted)"))
                        continue
                    end = ends[pid] = [row[0]]
                offset = end[0]
                end[0] = offset + 1
                rows.append(((pid << OFFSET_BITS) | offset, ts, key, value, headers))
                results.append(Receipt(topic, partition, offset))
            if atomic:
                for r in results:
                    if isinstance(r, BusError):
                        raise r
            if rows:
                self.db.executemany("INSERT INTO messages(id, ts, key, value, headers) VALUES (?,?,?,?,?)", rows)
                self.db.executemany(
                    "UPDATE partitions SET end_offset=? WHERE id=?", [(e[0], pid) for pid, e in ends.items()]
                )
            if offsets is not None:
                self._commit_offsets(*offsets)
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return results

    def maybe_enforce_retention(self, every_seconds: float = 5.0) -> None:
        """Delete what `retention.ms` / `retention.messages` no longer keep; at most every few seconds."""
        now = time.monotonic()
        if now - self._last_retention < every_seconds:
            return
        self._last_retention = now
        self.enforce_retention()

    def enforce_retention(self) -> None:
        rows = self.db.execute(
            "SELECT p.id, p.start_offset, p.end_offset, t.retention_ms, t.retention_messages"
            " FROM partitions p JOIN topics t ON t.name = p.topic"
            " WHERE t.retention_ms IS NOT NULL OR t.retention_messages IS NOT NULL"
        ).fetchall()
        if not rows:
            return
        cutoff_ts = now_ms()
        self._begin()
        try:
            for pid, start, end, retention_ms, retention_messages in rows:
                new_start = start
                if retention_messages is not None:
                    new_start = max(new_start, end - retention_messages)
                if retention_ms is not None:
                    base = pid << OFFSET_BITS
                    first = self.db.execute(
                        "SELECT id FROM messages WHERE id>=? AND id<? AND ts>? ORDER BY id LIMIT 1",
                        (base + new_start, base + end, cutoff_ts - retention_ms),
                    ).fetchone()
                    new_start = max(new_start, (first[0] - base) if first else end)
                if new_start > start:
                    base = pid << OFFSET_BITS
                    self.db.execute("DELETE FROM messages WHERE id>=? AND id<?", (base + start, base + new_start))
                    self.db.execute("UPDATE partitions SET start_offset=? WHERE id=?", (new_start, pid))
            self._commit()
        except BaseException:
            self._rollback()
            raise

    # ---- consume ----

    def fetch(self, positions: Mapping[TopicPartition, int], max_messages: int) -> list[Message]:
        """Messages from `positions` onward, partition by partition, at most `max_messages` in total.

        A position before the partition's retained start moves to the start (what was deleted is gone).
        """
        out: list[Message] = []
        budget = max_messages
        for tp, pos in positions.items():
            if budget <= 0:
                break
            try:
                t = self._topic(tp.topic)
            except UnknownTopic:
                continue
            pid = t.ids[tp.partition]
            base = pid << OFFSET_BITS
            rows = self.db.execute(
                "SELECT id, ts, key, value, headers FROM messages WHERE id>=? AND id<? ORDER BY id LIMIT ?",
                (base + pos, base + (1 << OFFSET_BITS), budget),
            ).fetchall()
            topic, partition = tp
            new = tuple.__new__  # Message(...) without the NamedTuple's Python-level __new__ (see types.Message)
            for rid, ts, key, value, headers in rows:
                out.append(new(Message, (topic, partition, rid - base, key, value, decode_headers(headers), ts)))
            budget -= len(rows)
        return out

    def bounds(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, tuple[int, int]]:
        """(start, end) offsets per partition."""
        out: dict[TopicPartition, tuple[int, int]] = {}
        for tp in tps:
            row = self.db.execute(
                "SELECT start_offset, end_offset FROM partitions WHERE topic=? AND partition=?", tp
            ).fetchone()
            if row is not None:
                out[tp] = (row[0], row[1])
        return out

    def committed(self, group: str, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]:
        out: dict[TopicPartition, int | None] = {}
        for tp in tps:
            row = self.db.execute(
                "SELECT offset FROM offsets WHERE grp=? AND topic=? AND partition=?", (group, *tp)
            ).fetchone()
            out[tp] = row[0] if row else None
        return out

    def lag(self, group: str, topics: Sequence[str]) -> dict[TopicPartition, PartitionLag]:
        tps = self.partitions_of(topics)
        committed = self.committed(group, tps)
        return {
            tp: PartitionLag(committed=committed.get(tp), end=end, start=start)
            for tp, (start, end) in self.bounds(tps).items()
        }

    def commit_offsets(self, group: str, member: str | None, offsets: Mapping[TopicPartition, int]) -> None:
        self._begin()
        try:
            self._commit_offsets(group, member, offsets)
            self._commit()
        except BaseException:
            self._rollback()
            raise

    def _commit_offsets(self, group: str, member: str | None, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit, fenced: with a member, only partitions it still owns (a revoked partition is not ours)."""
        if member is None:
            self.db.executemany(
                "INSERT OR REPLACE INTO offsets(grp, topic, partition, offset) VALUES (?,?,?,?)",
                [(group, tp.topic, tp.partition, off) for tp, off in offsets.items()],
            )
            return
        self.db.executemany(
            "INSERT OR REPLACE INTO offsets(grp, topic, partition, offset)"
            " SELECT ?1, ?2, ?3, ?4 WHERE EXISTS"
            " (SELECT 1 FROM owners WHERE grp=?1 AND topic=?2 AND partition=?3 AND member=?5)",
            [(group, tp.topic, tp.partition, off, member) for tp, off in offsets.items()],
        )

    # ---- group membership ----

    def sync_group(
        self,
        group: str,
        member: str,
        topics: Sequence[str],
        stored: Mapping[TopicPartition, int],
        *,
        session_ms: int,
        from_beginning: bool,
        leave: bool = False,
    ) -> SyncResult:
        """Heartbeat, then move towards this member's fair share of the group's partitions (cooperatively).

        Partitions another live member should own are released (after committing what `stored` says was
        processed); unowned partitions due to us are claimed, starting at the committed offset. A member whose
        session expired loses its partitions. `leave=True` releases everything and removes the member.
        """
        now = now_ms()
        self._begin()
        try:
            self.db.execute("DELETE FROM members WHERE expires_ms<?", (now,))
            self.db.execute(
                "DELETE FROM owners WHERE grp=? AND member NOT IN (SELECT member FROM members WHERE grp=?)",
                (group, group),
            )
            if leave:
                self.db.execute("DELETE FROM members WHERE grp=? AND member=?", (group, member))
            else:
                self.db.execute(
                    "INSERT OR REPLACE INTO members(grp, member, topics, expires_ms) VALUES (?,?,?,?)",
                    (group, member, "\n".join(sorted(topics)), now + session_ms),
                )
            members = self.db.execute("SELECT member, topics FROM members WHERE grp=?", (group,)).fetchall()
            subscribers: dict[str, list[str]] = {}
            for m, ts in members:
                for topic in ts.split("\n"):
                    subscribers.setdefault(topic, []).append(m)
            target: set[TopicPartition] = set()
            if not leave:
                for tp in self.partitions_of(sorted(topics)):
                    subs = sorted(subscribers.get(tp.topic, []))
                    if subs and subs[tp.partition % len(subs)] == member:
                        target.add(tp)
            owners = {
                TopicPartition(t, p): m
                for t, p, m in self.db.execute(
                    "SELECT topic, partition, member FROM owners WHERE grp=?", (group,)
                ).fetchall()
            }
            owned = {tp for tp, m in owners.items() if m == member}
            revoked = sorted(owned - target)
            if revoked:
                self._commit_offsets(group, member, {tp: stored[tp] for tp in revoked if tp in stored})
                self.db.executemany(
                    "DELETE FROM owners WHERE grp=? AND topic=? AND partition=? AND member=?",
                    [(group, tp.topic, tp.partition, member) for tp in revoked],
                )
            assigned = sorted(tp for tp in target - owned if tp not in owners)
            self.db.executemany(
                "INSERT INTO owners(grp, topic, partition, member) VALUES (?,?,?,?)",
                [(group, tp.topic, tp.partition, member) for tp in assigned],
            )
            positions = self._start_positions(group, assigned, from_beginning)
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return SyncResult((owned - set(revoked)) | set(assigned), assigned, revoked, positions)

    def _start_positions(
        self, group: str | None, tps: Sequence[TopicPartition], from_beginning: bool
    ) -> dict[TopicPartition, int]:
        committed = self.committed(group, tps) if group is not None else {}
        out: dict[TopicPartition, int] = {}
        for tp, (start, end) in self.bounds(tps).items():
            c = committed.get(tp)
            out[tp] = max(c, start) if c is not None else (start if from_beginning else end)
        return out

    def start_positions(self, tps: Sequence[TopicPartition], from_beginning: bool) -> dict[TopicPartition, int]:
        return self._start_positions(None, tps, from_beginning)


def _opt_int(spec: TopicSpec, name: str) -> int | None:
    raw = spec.config.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"topic {spec.name!r}: {name} must be an integer, not {raw!r}") from None
    return None if value < 0 else value
