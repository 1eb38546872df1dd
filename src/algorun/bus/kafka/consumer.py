"""Kafka consumer: a group member with explicit commits, cooperative rebalancing and pause/resume.

Messages already fetched by librdkafka are taken on the event loop thread with a non-blocking `consume()`; only
when none are waiting does a blocking `consume()` run on one worker thread, a whole batch per hop. Under load
(a backlog) that saves the thread hop and two loop wake-ups per batch. Rebalance callbacks run on whichever of
the two threads calls librdkafka: on revoke, the offsets the caller stored (processed) for those partitions are
committed synchronously before the partitions are handed back (on the loop thread this holds the loop for
that one commit: correctness first), and the caller's `on_revoke` is scheduled on the loop.
Client errors never end the consumer (an original defect): transient ones are logged and retried by
librdkafka; authentication failures and fatal errors are raised from `getmany`, and the consumer stays usable.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, KafkaError, KafkaException
from confluent_kafka import Consumer as _Consumer
from confluent_kafka import TopicPartition as _TP

from algorun.bus.errors import BusClosed, BusError, ConfigError
from algorun.bus.interface import Consumer, PartitionsCallback
from algorun.bus.kafka.errors import is_auth_error, translate
from algorun.bus.types import Message, TopicPartition, store_offsets

if TYPE_CHECKING:
    from algorun.bus.settings import KafkaSettings

log = logging.getLogger(__name__)

_REBALANCING = {
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError._STATE,
}

CONSUMER_DEFAULTS: dict[str, str | int | float | bool] = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "partition.assignment.strategy": "cooperative-sticky",
    "isolation.level": "read_committed",
    "enable.partition.eof": False,
    # Once its prefetch queue is full (queued.min.messages), librdkafka postpones a partition's next fetch by
    # this much: 1000 ms by default. A consumer that drains the queue faster than that then sits idle for the
    # rest of the second. 10 ms keeps a consumer reading a backlog busy (benchmarks/runner.py, raw and python).
    "fetch.queue.backoff.ms": 10,
    # A fetch or commit request goes out at once, not after the acknowledgement of the one before it.
    "socket.nagle.disable": True,
}


class KafkaConsumer(Consumer):
    """A group member (or, with no group, a reader of every partition) whose offsets are committed only when the
    caller says so, so a message counts as done only once its outcome is stored (module docstring)."""

    def __init__(
        self,
        settings: KafkaSettings,
        group: str | None,
        topics: Sequence[str],
        *,
        from_beginning: bool,
        on_assign: PartitionsCallback | None,
        on_revoke: PartitionsCallback | None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self.group = group
        self.topics = list(topics)
        self._where = f"Kafka {settings.bootstrap_servers}"
        self._from_beginning = from_beginning
        self._on_assign_cb = on_assign
        self._on_revoke_cb = on_revoke
        conf: dict[str, Any] = {**settings.client_config(), **CONSUMER_DEFAULTS, **settings.consumer_config}
        conf.update(settings.client_config_overrides)
        conf["group.id"] = group if group is not None else f"algorun-reader-{uuid.uuid4().hex}"
        conf["auto.offset.reset"] = "earliest" if from_beginning else "latest"
        conf["error_cb"] = self._on_error
        try:
            self._c = _Consumer(conf)
        except KafkaException as e:
            raise ConfigError(f"{self._where}: invalid consumer settings: {e}") from e
        self._lock = threading.Lock()
        self._owned: set[TopicPartition] = set()
        self._positions: dict[TopicPartition, int] = {}
        self._stored: dict[TopicPartition, int] = {}
        self._paused: set[TopicPartition] = set()
        self._needs_seek: set[TopicPartition] = set()
        self._error: BusError | None = None
        self.last_error: BusError | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="algorun-kafka-consumer")
        self._fetch: asyncio.Future[list[Any]] | None = None
        self._closed = False
        self._started = False

    def group_metadata(self) -> Any:
        return self._c.consumer_group_metadata()

    # ---- worker thread ----

    def _start(self) -> None:
        if self.group is None:
            meta = self._c.list_topics(timeout=10)
            tps: list[Any] = []
            for name in self.topics:
                t = meta.topics.get(name)
                if t is None or t.error is not None:
                    continue
                start = OFFSET_BEGINNING if self._from_beginning else OFFSET_END
                tps.extend(_TP(name, p, start) for p in t.partitions)
            self._c.assign(tps)
            self._assigned([TopicPartition(tp.topic, tp.partition) for tp in tps])
        else:
            self._c.subscribe(self.topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost)

    def _on_error(self, err: KafkaError) -> None:
        error = translate(err, f"consume from {self._where}")
        self.last_error = error
        if is_auth_error(err) or err.fatal():
            self._error = error
            log.error("%s", error)
        else:
            log.warning("%s (retrying)", error)

    def _assigned(self, tps: list[TopicPartition]) -> None:
        with self._lock:
            self._owned.update(tps)
        if tps and self._on_assign_cb is not None:
            self._loop.call_soon_threadsafe(self._on_assign_cb, tps)

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        # librdkafka keeps a partition's pause flag across revoke and re-assign; we forget pauses on revoke, so a
        # partition paused before a rebalance and handed back would never be read again. Assigned means unpaused.
        if partitions:
            try:
                consumer.resume(partitions)
            except KafkaException as e:
                log.warning("%s: resuming newly assigned partitions failed: %s", self._where, e)
        self._assigned([TopicPartition(p.topic, p.partition) for p in partitions])

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        """Commit what was processed on the partitions we are losing; the rest goes to the next owner."""
        tps = [TopicPartition(p.topic, p.partition) for p in partitions]
        with self._lock:
            offsets = [_TP(tp.topic, tp.partition, self._stored[tp]) for tp in tps if tp in self._stored]
        if offsets:
            try:
                consumer.commit(offsets=offsets, asynchronous=False)
            except KafkaException as e:
                log.warning("%s: commit on revoke failed, the next owner re-reads: %s", self._where, e)
        self._dropped(tps)

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        """Lost (session timeout): another member may own them already, so commit nothing."""
        self._dropped([TopicPartition(p.topic, p.partition) for p in partitions])

    def _dropped(self, tps: list[TopicPartition]) -> None:
        with self._lock:
            for tp in tps:
                self._owned.discard(tp)
                self._positions.pop(tp, None)
                self._stored.pop(tp, None)
                self._paused.discard(tp)
                self._needs_seek.discard(tp)
        if tps and self._on_revoke_cb is not None:
            self._loop.call_soon_threadsafe(self._on_revoke_cb, tps)

    def _seek_pending(self) -> None:
        with self._lock:
            if not self._needs_seek:
                return
            seeks = [_TP(tp.topic, tp.partition, self._positions[tp]) for tp in self._needs_seek]
            self._needs_seek.clear()
        for tp in seeks:
            try:
                self._c.seek(tp)
            except KafkaException as e:
                log.warning("%s: seek %s failed: %s", self._where, tp, e)

    def _consume(self, max_messages: int, max_wait: float) -> list[Any]:
        if not self._started:
            self._start()
            self._started = True
        self._seek_pending()
        # librdkafka's consume(n, timeout) waits until it has *n* messages or the timeout passes; getmany waits
        # only for the first one (a lone message must not sit out max_wait), then takes what else is there.
        result: list[Any] = self._c.consume(1, max_wait)
        if result and max_messages > 1:
            result.extend(self._c.consume(max_messages - 1, 0))
        return result

    # ---- event loop ----

    async def getmany(self, max_messages: int = 500, max_wait: float = 1.0) -> list[Message]:
        if self._closed:
            raise BusClosed(f"{self._where}: consumer is closed")
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        raw: list[Any] = []
        if self._fetch is None and self._started and not self._needs_seek:
            # What librdkafka already fetched is taken without a thread hop (a timeout of 0 does not wait;
            # seeks, which do, are left to the worker thread).
            raw = self._c.consume(max_messages, 0)
        if not raw:
            if self._fetch is None:
                self._fetch = asyncio.wrap_future(self._pool.submit(self._consume, max_messages, max_wait))
            # A cancelled caller must not lose a batch librdkafka already handed over: keep it for the next call.
            raw = await asyncio.shield(self._fetch)
            self._fetch = None
        return self._convert(raw)

    def _convert(self, raw: list[Any]) -> list[Message]:
        """librdkafka messages to ours, skipping paused partitions and remembering each partition's position.

        This runs once per consumed message, so it touches each field once and builds nothing it does not
        return: the topic and partition are compared as they come, and a `TopicPartition` is made per run of
        one partition, not per message.
        """
        out: list[Message] = []
        first_error: BusError | None = None
        append = out.append
        new = tuple.__new__  # Message(...) without the NamedTuple's Python-level __new__ (see types.Message)
        with self._lock:
            positions = self._positions
            blocked = self._paused  # messages fetched for a paused partition are refetched after resume
            last_t: str | None = None
            last_p = -1
            tp = TopicPartition("", -1)
            skip = False
            offset = -1
            for m in raw:
                if m.error() is not None:
                    err = m.error()
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    e = translate(err, f"consume from {m.topic() or self._where}")
                    self.last_error = e
                    log.warning("%s", e)
                    if first_error is None and not err.retriable():
                        first_error = e
                    continue
                t = m.topic()
                p = m.partition()
                if p != last_p or t != last_t:
                    if not skip and offset >= 0:
                        positions[tp] = offset + 1
                    offset = -1
                    last_t, last_p = t, p
                    tp = TopicPartition(t, p)
                    skip = tp in blocked
                if skip:
                    continue
                offset = m.offset()
                append(new(Message, (t, p, offset, m.key(), m.value() or b"", m.headers() or [], m.timestamp()[1])))
            if not skip and offset >= 0:
                positions[tp] = offset + 1
        if first_error is not None and not out:
            raise first_error
        return out

    def store(self, offsets: Mapping[TopicPartition, int] | Iterable[Message]) -> None:
        with self._lock:
            store_offsets(self._stored, offsets)

    def _forget_stored(self, offsets: Mapping[TopicPartition, int]) -> None:
        with self._lock:
            for tp, off in offsets.items():
                if self._stored.get(tp, -1) <= off:
                    self._stored.pop(tp, None)

    async def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        if self.group is None:
            raise ConfigError(f"{self._where}: a consumer without a group cannot commit")
        with self._lock:
            chosen = dict(self._stored if offsets is None else offsets)
            chosen = {tp: off for tp, off in chosen.items() if tp in self._owned}
        if not chosen:
            return
        tps = [_TP(tp.topic, tp.partition, off) for tp, off in chosen.items()]
        try:
            await self._loop.run_in_executor(None, lambda: self._c.commit(offsets=tps, asynchronous=False))
        except KafkaException as e:
            err = e.args[0] if e.args else None
            if isinstance(err, KafkaError) and err.code() == KafkaError._NO_OFFSET:
                return
            if isinstance(err, KafkaError) and err.code() in _REBALANCING:
                # Not lost: kept stored, committed by the next commit or when the partitions are revoked.
                log.info("%s: commit deferred by a rebalance (%s)", self._where, err.name())
                self.store(chosen)
                return
            raise translate(e, f"commit {self.group} on {self._where}") from e
        self._forget_stored(chosen)

    async def committed(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int | None]:
        tps = [_TP(tp.topic, tp.partition) for tp in partitions]
        try:
            got = await self._loop.run_in_executor(None, lambda: self._c.committed(tps, timeout=10))
        except KafkaException as e:
            raise translate(e, f"committed offsets of {self.group} on {self._where}") from e
        return {TopicPartition(t.topic, t.partition): (t.offset if t.offset >= 0 else None) for t in got}

    def pause(self, partitions: Iterable[TopicPartition]) -> None:
        with self._lock:
            tps = [tp for tp in partitions if tp in self._owned]
            self._paused.update(tps)
        if tps:
            self._c.pause([_TP(tp.topic, tp.partition) for tp in tps])

    def resume(self, partitions: Iterable[TopicPartition]) -> None:
        with self._lock:
            tps = [tp for tp in partitions if tp in self._paused]
            self._paused.difference_update(tps)
            # Messages fetched while paused were dropped: restart from the last position we yielded.
            self._needs_seek.update(tp for tp in tps if tp in self._positions)
        if tps:
            self._c.resume([_TP(tp.topic, tp.partition) for tp in tps])

    def assignment(self) -> set[TopicPartition]:
        with self._lock:
            return set(self._owned)

    async def close(self) -> None:
        """Commit what is stored, leave the group (the final revoke commits too), release the client."""
        if self._closed:
            return
        if self._fetch is not None:
            await asyncio.gather(self._fetch, return_exceptions=True)
            self._fetch = None
        if self.group is not None and self._stored:
            try:
                await self.commit()
            except BusError as e:
                log.warning("%s", e)
        self._closed = True
        await self._loop.run_in_executor(self._pool, self._c.close)
        self._pool.shutdown(wait=False)
