"""At-least-once bookkeeping for a consumer: which input offsets may be committed.

Messages of one partition finish out of order (several keys run at once, a retried message waits, staged parts
wait for their trigger, one webhook is slower than another). Kafka commits one position per partition, so the
committable position is the end of the *contiguous prefix* of finished offsets: everything before it is done, so
a restart re-reads only work that was not finished (the in-flight window).

A message may owe several finishes (the hook runner: one per matching hook); it is finished after the last one.

Partitions can be revoked and assigned again while work of the first assignment is still running. Each assignment
is a new *generation*, and a `Ticket` names the generation that read its message: a finish handed back with a
ticket of an older generation never counts, so a late finisher can never complete the re-read copy of its message
and commit it before the current work ended. Finishes reported by partition and offset (`done`, `done_all`) count
for the current generation: the runner reports a message finished only once its writes are acknowledged, which
holds whichever assignment read it.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import NamedTuple

from algorun.bus.types import Message, TopicPartition


class Ticket(NamedTuple):
    """Proof that a message is owed by one assignment (generation) of its partition, handed back to `finish`."""

    tp: TopicPartition
    offset: int
    generation: int


class PartitionOffsets:
    """Offsets of one partition, added in read order, finished in any order."""

    __slots__ = ("_committable", "_done", "_last", "_owed", "_pending")

    def __init__(self) -> None:
        self._pending: deque[int] = deque()
        self._done: set[int] = set()
        self._owed: dict[int, int] = {}  # offsets that owe more than one finish: how many are left
        self._committable: int | None = None
        self._last = -1

    def add(self, offset: int) -> None:
        """Track a message just read, owing one finish; offsets must increase (a partition is read in order)."""
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

    def owe(self, offset: int, finishes: int) -> bool:
        """Track a message that owes `finishes` finishes (at least one).

        False for an offset at or below one already added (a re-fetch): it is owed already, and is neither owed
        nor counted twice."""
        if offset <= self._last:
            return False
        self._last = offset
        self._pending.append(offset)
        if finishes > 1:
            self._owed[offset] = finishes
        return True

    def owes(self, offset: int) -> bool:
        """Does the added `offset` still owe a finish? (Only for offsets added here: gaps are not told apart.)"""
        pending = self._pending
        return bool(pending) and pending[0] <= offset <= self._last and offset not in self._done

    def done_many(self, offsets: Iterable[int]) -> bool:
        """`done` for each of `offsets`; True when the committable position moved. Offsets finished in read order
        (the inline path's) only pop the head of the pending queue, without a call each."""
        if self._owed:
            return any([self.done(offset) for offset in offsets])
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
        """One finish of `offset`; True when the committable position moved."""
        owed = self._owed
        if owed and offset in owed:
            left = owed[offset] - 1
            if left > 0:
                owed[offset] = left
                return False
            del owed[offset]
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
    """`PartitionOffsets` for every owned partition, with the generation of each partition's assignment and the
    positions that moved since the last commit."""

    def __init__(self) -> None:
        self._parts: dict[TopicPartition, PartitionOffsets] = {}
        self._generations: dict[TopicPartition, int] = {}
        self._moved: dict[TopicPartition, int] = {}

    def _part(self, tp: TopicPartition) -> PartitionOffsets:
        part = self._parts.get(tp)
        if part is None:
            part = self._parts[tp] = PartitionOffsets()
        return part

    def add(self, tp: TopicPartition, offset: int) -> None:
        self._part(tp).add(offset)

    def done(self, tp: TopicPartition, offset: int) -> None:
        """One finish of `offset`, counted for the current generation of `tp`."""
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

    def owe(self, tp: TopicPartition, offset: int, finishes: int) -> Ticket | None:
        """A message read from `tp` that owes `finishes` finishes (0: nothing to do, finished at once).

        None for an offset at or below one already added in this generation (a re-fetch): it is already owed,
        and must be neither worked on twice nor counted twice."""
        if not self._part(tp).owe(offset, max(finishes, 1)):
            return None
        if finishes <= 0:
            self.done(tp, offset)  # keeps its place: a later offset is not committable before the ones ahead of it
        return Ticket(tp, offset, self._generations.get(tp, 0))

    def finish(self, ticket: Ticket) -> None:
        """One finish of the ticket's message; nothing when its partition was revoked since it was read (the new
        owner reads it again)."""
        if self.current(ticket):
            self.done(ticket.tp, ticket.offset)

    def current(self, ticket: Ticket) -> bool:
        """Is the message still owed by this assignment (its partition not revoked since it was read)?"""
        if self._generations.get(ticket.tp, 0) != ticket.generation:
            return False
        part = self._parts.get(ticket.tp)
        return part is not None and part.owes(ticket.offset)

    def take_moved(self) -> dict[TopicPartition, int]:
        """Positions that advanced since the previous call (what to store and commit now)."""
        moved, self._moved = self._moved, {}
        return moved

    def forget(self, tps: Iterable[TopicPartition]) -> None:
        """Partitions revoked: their new owner decides from the last commit, and whatever is still running for
        them belongs to an older generation."""
        generations = self._generations
        for tp in tps:
            self._parts.pop(tp, None)
            self._moved.pop(tp, None)
            generations[tp] = generations.get(tp, 0) + 1

    def owns(self, tp: TopicPartition) -> bool:
        return tp in self._parts

    def pending(self, tp: TopicPartition) -> int:
        part = self._parts.get(tp)
        return part.pending if part is not None else 0

    @property
    def uncommitted(self) -> int:
        """Messages read and not covered by a committable position, in every partition."""
        return sum(p.pending for p in self._parts.values())

    @property
    def in_flight(self) -> int:
        return sum(p.in_flight for p in self._parts.values())


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
