"""Plain values that cross the bus interface: messages, deliveries, topic specs, lag.

They are backend-neutral so that the runner, endpoint and hooks never see a confluent-kafka or SQLite type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

Headers = list[tuple[str, bytes]]
"""Kafka headers: ordered, names may repeat, values are raw bytes (the contract's values are UTF-8)."""


class TopicPartition(NamedTuple):
    """One partition of one topic; hashable, so it keys offset maps."""

    topic: str
    partition: int


@dataclass(slots=True)
class Message:
    """One consumed record. `offset` is its position; commit `next_offset` once it is processed.

    Not frozen: frozen dataclasses cost a setattr call per field, and this is built once per message.
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
        return TopicPartition(self.topic, self.partition)

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


class Delivery(NamedTuple):
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
