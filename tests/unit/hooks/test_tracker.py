"""Commit tracking: an offset becomes committable only when it and everything before it is finished by every
matching hook, and nothing from a revoked assignment can count towards a later one."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from algorun.bus.types import TopicPartition
from algorun.hooks.tracker import OffsetTracker, Ticket

TP = TopicPartition("t", 0)
OTHER = TopicPartition("t", 1)


def _ticket(tracker: OffsetTracker, offset: int, pending: int, tp: TopicPartition = TP) -> Ticket:
    ticket = tracker.add(tp, offset, pending)
    assert ticket is not None
    return ticket


def test_an_offset_waits_for_every_hook() -> None:
    tracker = OffsetTracker()
    t = _ticket(tracker, 10, 2)
    tracker.done(t)
    assert tracker.take_committable() == {}
    tracker.done(t)
    assert tracker.take_committable() == {TP: 11}
    assert tracker.take_committable() == {}, "only what advanced since the last call"
    assert tracker.pending == 0


def test_a_slow_earlier_message_holds_back_later_ones() -> None:
    tracker = OffsetTracker()
    first, second, third = (_ticket(tracker, o, 1) for o in (0, 1, 2))
    tracker.done(third)
    tracker.done(second)
    assert tracker.take_committable() == {}
    tracker.done(first)
    assert tracker.take_committable() == {TP: 3}


def test_messages_without_hooks_are_done_at_once_but_keep_their_place() -> None:
    tracker = OffsetTracker()
    owed = _ticket(tracker, 0, 1)
    _ticket(tracker, 1, 0)
    assert tracker.take_committable() == {}
    tracker.done(owed)
    assert tracker.take_committable() == {TP: 2}


def test_partitions_are_independent() -> None:
    tracker = OffsetTracker()
    _ticket(tracker, 0, 1)
    other = _ticket(tracker, 5, 1, OTHER)
    tracker.done(other)
    assert tracker.take_committable() == {OTHER: 6}


def test_a_refetched_offset_is_not_owed_twice() -> None:
    tracker = OffsetTracker()
    t = _ticket(tracker, 3, 1)
    assert tracker.add(TP, 3, 1) is None
    assert tracker.add(TP, 2, 1) is None
    tracker.done(t)
    assert tracker.take_committable() == {TP: 4}


def test_a_late_finisher_from_a_revoked_assignment_counts_for_nothing() -> None:
    tracker = OffsetTracker()
    old = _ticket(tracker, 7, 2)
    tracker.forget([TP])
    assert not tracker.current(old)
    new = _ticket(tracker, 7, 2)  # the partition came back and the message was read again
    tracker.done(old)
    tracker.done(new)
    assert tracker.take_committable() == {}, "the old delivery must not complete the new one"
    tracker.done(new)
    assert tracker.take_committable() == {TP: 8}


def test_done_twice_for_one_ticket_never_goes_negative_or_skips() -> None:
    tracker = OffsetTracker()
    a = _ticket(tracker, 0, 1)
    b = _ticket(tracker, 1, 1)
    tracker.done(a)
    tracker.done(a)
    assert tracker.take_committable() == {TP: 1}
    assert tracker.current(b)


@given(
    pendings=st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=40),
    seed=st.integers(),
)
def test_committed_offset_is_always_the_end_of_the_finished_prefix(pendings: list[int], seed: int) -> None:
    tracker = OffsetTracker()
    tickets = [_ticket(tracker, offset, p) for offset, p in enumerate(pendings)]
    remaining = list(pendings)
    finishes = [i for i, p in enumerate(pendings) for _ in range(p)]
    random.Random(seed).shuffle(finishes)
    committed = 0
    for i in [-1, *finishes]:
        if i >= 0:
            tracker.done(tickets[i])
            remaining[i] -= 1
        committed = tracker.take_committable().get(TP, committed)
        prefix = 0
        while prefix < len(remaining) and remaining[prefix] == 0:
            prefix += 1
        assert committed == prefix
    assert committed == len(pendings)
    assert tracker.pending == 0
