"""Plain values that cross the bus interface: messages, deliveries, topic specs, lag.

They are backend-neutral so that the runner, endpoint and hooks never see a confluent-kafka or SQLite type.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

Headers = list[tuple[str, bytes]]
"""Kafka headers: ordered, names may repeat, values are raw bytes (the contract's values are UTF-8)."""


_new_tuple = tuple.__new__


class TopicPartition(NamedTuple):
    """One partition of one topic; hashable, so it keys offset maps."""

    topic: str
    partition: int


class Message(NamedTuple):
    """One consumed record. `offset` is its position; commit `next_offset` once it is processed.

    A NamedTuple because it is built once per consumed message: backends build it with
    `tuple.__new__(Message, (...))`, in C, which costs less per message than a slotted dataclass's Python
    `__init__` (`benchmarks/bus.py`, consume).
    Read-only, like the record it describes; `headers` is the record's own list.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers
    timestamp_ms: int

    @property
    def tp(self) -> TopicPartition:
        # tuple.__new__ skips the NamedTuple's Python-level __new__: callers ask for this once per message.
        return _new_tuple(TopicPartition, (self.topic, self.partition))

    @property
    def next_offset(self) -> int:
        """The offset to commit when this message is processed (Kafka commits the next position)."""
        return self.offset + 1

    def header(self, name: str) -> bytes | None:
        """The last value of header `name`, or None (Kafka semantics: a later header wins)."""
        for k, v in reversed(self.headers):
            if k == name:
                return v
        return None


def store_offsets(stored: dict[TopicPartition, int], offsets: Mapping[TopicPartition, int] | Iterable[Message]) -> None:
    """Raise `stored` to `offsets` (next offsets, or processed messages); never lowers a partition's offset.

    Both backends' `Consumer.store` use it. For messages, consecutive ones of one partition (how batches
    arrive) are folded before touching the map, so a batch costs a comparison per message, not a lookup.
    """
    if isinstance(offsets, Mapping):
        for tp, off in offsets.items():
            if stored.get(tp, -1) < off:
                stored[tp] = off
        return
    last_t: str | None = None
    last_p = -1
    top = -1
    for m in offsets:
        if m.partition != last_p or m.topic != last_t:
            if top >= 0:
                tp = _new_tuple(TopicPartition, (last_t, last_p))
                if stored.get(tp, -1) < top:
                    stored[tp] = top
            last_t, last_p, top = m.topic, m.partition, -1
        if m.offset >= top:
            top = m.offset + 1
    if top >= 0:
        tp = _new_tuple(TopicPartition, (last_t, last_p))
        if stored.get(tp, -1) < top:
            stored[tp] = top


OutRecord = tuple[str, bytes, bytes | None, Headers | None, int | None]
"""One message for `Producer.produce_many`: (topic, value, key, headers, partition), as plain as it gets.

A plain tuple is built in C; `OutMessage` names the same fields for callers who prefer keywords.
"""


class OutMessage(NamedTuple):
    """One message to produce with `Producer.produce_many` (the arguments of `Producer.produce`)."""

    topic: str
    value: bytes
    key: bytes | None = None
    headers: Headers | None = None
    partition: int | None = None


class Receipt(NamedTuple):
    """Where the broker (or the local log) durably stored a produced message."""

    topic: str
    partition: int
    offset: int


@dataclass(slots=True, frozen=True)
class TopicSpec:
    """A topic to create. `config` uses Kafka's names (`retention.ms`, `cleanup.policy`, ...).

    The local backend honours `retention.ms` and its own `retention.messages`; Kafka ignores the latter.
    """

    name: str
    partitions: int = 1
    replication_factor: int = -1
    config: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True, frozen=True)
class TopicInfo:
    name: str
    partitions: int


@dataclass(slots=True, frozen=True)
class PartitionLag:
    """Backlog of one group on one partition: `end - committed` (committed is None before any commit)."""

    committed: int | None
    end: int
    start: int

    @property
    def lag(self) -> int:
        base = self.committed if self.committed is not None else self.start
        return max(0, self.end - max(base, self.start))
