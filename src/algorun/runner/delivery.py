"""At-least-once bookkeeping: which input offsets may be committed, and which messages may run concurrently.

Messages of one partition finish out of order (several keys run at once, a retried message waits, staged parts
wait for their trigger). Kafka commits one position per partition, so the committable position is the end of
the *contiguous prefix* of finished offsets: everything before it is done, so a restart re-reads only work that
was not finished (the in-flight window). Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable

from algorun.bus.types import Message, TopicPartition


class PartitionOffsets:
    """Offsets of one partition, added in read order, finished in any order."""

    __slots__ = ("_committable", "_done", "_last", "_pending")

    def __init__(self) -> None:
        self._pending: deque[int] = deque()
        self._done: set[int] = set()
        self._committable: int | None = None
        self._last = -1

    def add(self, offset: int) -> None:
        """Track a message just read; offsets must increase (a partition is read in order)."""
        if offset <= self._last:
            raise ValueError(f"offset {offset} added after {self._last}: a partition is read in order")
        self._last = offset
        self._pending.append(offset)

    def add_many(self, offsets: list[int]) -> None:
        """`add` for a run of offsets as one fetch returns them (increasing): one extend instead of a call each.
        Only the run's ends are checked against what was read before."""
        if not offsets:
            return
        if offsets[0] <= self._last or offsets[-1] < offsets[0]:
            raise ValueError(
                f"offsets {offsets[0]}..{offsets[-1]} added after {self._last}: a partition is read in order"
            )
        self._last = offsets[-1]
        self._pending.extend(offsets)

    def done_many(self, offsets: Iterable[int]) -> bool:
        """`done` for each of `offsets`; True when the committable position moved. Offsets finished in read order
        (the inline path's) only pop the head of the pending queue, without a call each."""
        pending, finished = self._pending, self._done
        moved = False
        for offset in offsets:
            if not finished and pending and pending[0] == offset:
                pending.popleft()
                self._committable = offset + 1
                moved = True
            elif self.done(offset):
                moved = True
        return moved

    def done(self, offset: int) -> bool:
        """Mark `offset` finished; True when the committable position moved."""
        if offset == (self._pending[0] if self._pending else None):
            self._pending.popleft()
            self._committable = offset + 1
            pending, done = self._pending, self._done
            while pending and pending[0] in done:
                o = pending.popleft()
                done.discard(o)
                self._committable = o + 1
            return True
        if offset > self._last or offset < (self._pending[0] if self._pending else self._last + 1):
            return False  # unknown or already finished: idempotent
        self._done.add(offset)
        return False

    @property
    def committable(self) -> int | None:
        """The next offset to commit (everything below it is finished), or None when nothing finished yet."""
        return self._committable

    @property
    def in_flight(self) -> int:
        return len(self._pending) - len(self._done)

    @property
    def pending(self) -> int:
        """Messages read and not covered by the committable position (finished out of order included)."""
        return len(self._pending)


class OffsetTracker:
    """`PartitionOffsets` for every owned partition, with the positions that moved since the last commit."""

    def __init__(self) -> None:
        self._parts: dict[TopicPartition, PartitionOffsets] = {}
        self._moved: dict[TopicPartition, int] = {}

    def add(self, tp: TopicPartition, offset: int) -> None:
        part = self._parts.get(tp)
        if part is None:
            part = self._parts[tp] = PartitionOffsets()
        part.add(offset)

    def done(self, tp: TopicPartition, offset: int) -> None:
        part = self._parts.get(tp)
        if part is not None and part.done(offset):
            committable = part.committable
            assert committable is not None
            self._moved[tp] = committable

    def add_all(self, messages: Iterable[Message]) -> None:
        """`add` every message of a fetched batch, in order (it comes in runs of one partition: one lookup and
        one `add_many` per run)."""
        parts = self._parts
        for tp, offsets in _runs(messages):
            part = parts.get(tp)
            if part is None:
                part = parts[tp] = PartitionOffsets()
            part.add_many(offsets)

    def done_all(self, messages: Iterable[Message]) -> None:
        """`done` for many finished messages (one lookup and one `done_many` per run of one partition)."""
        parts, moved = self._parts, self._moved
        for tp, offsets in _runs(messages):
            part = parts.get(tp)
            if part is not None and part.done_many(offsets):
                moved[tp] = part.committable  # type: ignore[assignment]  # set once an offset moved

    def take_moved(self) -> dict[TopicPartition, int]:
        """Positions that advanced since the previous call (what to store and commit now)."""
        moved, self._moved = self._moved, {}
        return moved

    def forget(self, tps: list[TopicPartition]) -> None:
        """Partitions revoked: their new owner decides from the last commit."""
        for tp in tps:
            self._parts.pop(tp, None)
            self._moved.pop(tp, None)

    def owns(self, tp: TopicPartition) -> bool:
        return tp in self._parts

    def pending(self, tp: TopicPartition) -> int:
        part = self._parts.get(tp)
        return part.pending if part is not None else 0

    @property
    def in_flight(self) -> int:
        return sum(p.in_flight for p in self._parts.values())


def lane_key(tp: TopicPartition, key: bytes | None, by_key: bool) -> Hashable:
    """Messages with the same lane run one after another, in read order; different lanes run concurrently.

    A lane is a partition, or (when `by_key`) a key within a partition: per-key order is what Kafka promises
    producers, so it is kept either way. Keyless messages share one lane per partition.
    """
    if by_key and key is not None:
        return (tp, key)
    return tp


def _runs(messages: Iterable[Message]) -> list[tuple[TopicPartition, list[int]]]:
    """The offsets of `messages`, in order, cut into runs of one partition (how a fetched batch comes)."""
    runs: list[tuple[TopicPartition, list[int]]] = []
    last_t: str | None = None
    last_p = -1
    offsets: list[int] = []
    append = offsets.append
    for m in messages:
        if m.partition != last_p or m.topic != last_t:
            last_t, last_p = m.topic, m.partition
            offsets = []
            append = offsets.append
            runs.append((TopicPartition(last_t, last_p), offsets))
        append(m.offset)
    return runs
