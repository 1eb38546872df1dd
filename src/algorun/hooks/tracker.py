"""Which offsets the hook runner may commit: a message counts as done once every matching hook delivered it
or dead-lettered it; the committable offset of a partition is just past its longest done prefix.

Deliveries finish out of order (one hook is slow, another fast), so an offset is committed only when everything
before it is done too: a restart redelivers exactly what was not finished (at-least-once).

Partitions can be revoked and assigned again while deliveries of the first assignment are still running. Each
assignment is a new *generation*; a `done` from an older generation is ignored, so a late finisher can never
count towards a re-read copy of its message and commit it before the current deliveries ended. Pure and
synchronous, so it is tested without Kafka.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from algorun.bus.types import TopicPartition


@dataclass(frozen=True)
class Ticket:
    """Proof that a message is owed, handed back to `done` by each hook that finishes it."""

    tp: TopicPartition
    offset: int
    generation: int


class OffsetTracker:
    def __init__(self) -> None:
        self._order: dict[TopicPartition, deque[int]] = {}
        self._remaining: dict[TopicPartition, dict[int, int]] = {}
        self._last: dict[TopicPartition, int] = {}
        self._generation: dict[TopicPartition, int] = {}
        self._committable: dict[TopicPartition, int] = {}

    def add(self, tp: TopicPartition, offset: int, pending: int) -> Ticket | None:
        """A message read from `tp` that `pending` hooks must finish (0: nothing to do, done at once).

        Returns None for an offset at or below one already added in this generation (a re-fetch): it is
        already owed, and must not be delivered twice nor counted twice."""
        last = self._last.get(tp)
        if last is not None and offset <= last:
            return None
        self._last[tp] = offset
        self._order.setdefault(tp, deque()).append(offset)
        self._remaining.setdefault(tp, {})[offset] = pending
        if pending <= 0:
            self._advance(tp)
        return Ticket(tp, offset, self._generation.get(tp, 0))

    def done(self, ticket: Ticket) -> None:
        """One hook finished the message (delivered or dead-lettered)."""
        if not self.current(ticket):
            return  # the partition was revoked meanwhile; its new owner redelivers
        remaining = self._remaining[ticket.tp]
        remaining[ticket.offset] -= 1
        if remaining[ticket.offset] <= 0:
            self._advance(ticket.tp)

    def current(self, ticket: Ticket) -> bool:
        """Is the message still owed by this assignment (its partition not revoked since it was read)?"""
        if self._generation.get(ticket.tp, 0) != ticket.generation:
            return False
        remaining = self._remaining.get(ticket.tp)
        return remaining is not None and remaining.get(ticket.offset, 0) > 0

    def _advance(self, tp: TopicPartition) -> None:
        order, remaining = self._order[tp], self._remaining[tp]
        while order and remaining[order[0]] <= 0:
            offset = order.popleft()
            del remaining[offset]
            self._committable[tp] = offset + 1

    def take_committable(self) -> dict[TopicPartition, int]:
        """Next offsets to commit that advanced since the last call."""
        out, self._committable = self._committable, {}
        return out

    def forget(self, tps: Iterable[TopicPartition]) -> None:
        """Partitions revoked: their unfinished messages will be redelivered to the new owner, and whatever is
        still running for them belongs to an old generation."""
        for tp in tps:
            self._order.pop(tp, None)
            self._remaining.pop(tp, None)
            self._committable.pop(tp, None)
            self._last.pop(tp, None)
            self._generation[tp] = self._generation.get(tp, 0) + 1

    @property
    def pending(self) -> int:
        """Messages read but not finished."""
        return sum(len(o) for o in self._order.values())
