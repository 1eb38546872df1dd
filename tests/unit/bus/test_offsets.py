"""The commit-prefix tracker: only the contiguous finished prefix of a partition is ever committable, a message
owing several finishes is finished after the last one, and nothing from a revoked assignment counts towards a
later one."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from algorun.bus.offsets import OffsetTracker, PartitionOffsets, Ticket
from algorun.bus.types import Message, TopicPartition

TP = TopicPartition("t", 0)
OTHER = TopicPartition("t", 1)


def test_commits_only_the_contiguous_prefix() -> None:
    p = PartitionOffsets()
    for o in (10, 11, 12, 13):
        p.add(o)
    assert p.committable is None
    assert not p.done(12)
    assert p.committable is None
    assert p.done(10)
    assert p.committable == 11
    assert p.done(11)
    assert p.committable == 13  # 12 was already finished
    assert p.done(13)
    assert p.committable == 14
    assert p.in_flight == 0


def test_offsets_must_increase() -> None:
    p = PartitionOffsets()
    p.add(5)
    with pytest.raises(ValueError, match="read in order"):
        p.add(5)
    with pytest.raises(ValueError, match="read in order"):
        p.add_many([4, 6])  # a batch that starts before what was read
    with pytest.raises(ValueError, match="read in order"):
        p.add_many([9, 7])  # a batch going backwards
    p.add_many([6, 7])
    assert p.pending == 3


def test_done_twice_or_unknown_is_harmless() -> None:
    p = PartitionOffsets()
    p.add(1)
    p.add(2)
    p.done(1)
    p.done(1)
    p.done(99)
    assert p.committable == 2
    p.done(2)
    assert p.committable == 3


@given(
    st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=60),
    st.randoms(use_true_random=False),
    st.data(),
)
def test_committable_is_never_past_an_unfinished_offset(gaps: list[int], rnd: object, data: st.DataObject) -> None:
    offsets = []
    o = 0
    for g in gaps:
        o += g
        offsets.append(o)
    order = data.draw(st.permutations(offsets))
    finish_count = data.draw(st.integers(min_value=0, max_value=len(order)))
    tracker = OffsetTracker()
    for off in offsets:
        tracker.add(TP, off)
    finished: set[int] = set()
    commits: list[int] = []
    for off in order[:finish_count]:
        tracker.done(TP, off)
        finished.add(off)
        moved = tracker.take_moved()
        if TP in moved:
            commits.append(moved[TP])
            # everything below the committed position is finished
            assert all(x in finished for x in offsets if x < moved[TP])
    assert commits == sorted(commits)  # positions only move forward
    unfinished = [x for x in offsets if x not in finished]
    expected = None
    prefix = [x for x in offsets if not unfinished or x < unfinished[0]]
    if prefix:
        expected = prefix[-1] + 1
    last = commits[-1] if commits else None
    assert last == expected  # and it is as far as it can be


def test_forget_drops_revoked_partitions() -> None:
    t = OffsetTracker()
    t.add(TP, 1)
    t.done(TP, 1)
    t.forget([TP])
    assert t.take_moved() == {}
    assert not t.owns(TP)


@given(
    st.lists(st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 2)), min_size=1, max_size=40),
    st.randoms(use_true_random=False),
)
def test_batch_operations_equal_one_at_a_time(reads: list[tuple[str, int]], rnd: Any) -> None:
    """`add_all`/`done_all` (the runner's per-batch calls) leave the same committable positions as `add`/`done`."""
    next_offset: dict[tuple[str, int], int] = {}
    messages = []
    for topic, partition in reads:
        offset = next_offset.get((topic, partition), 0)
        next_offset[(topic, partition)] = offset + 1 + rnd.randint(0, 2)  # gaps, as compaction leaves them
        messages.append(Message(topic, partition, offset, None, b"", [], 0))
    finished = rnd.sample(messages, rnd.randint(0, len(messages)))
    if rnd.random() < 0.5:  # the inline path finishes in read order
        finished.sort(key=messages.index)
    one, many = OffsetTracker(), OffsetTracker()
    for m in messages:
        one.add(m.tp, m.offset)
    many.add_all(messages)
    cut = rnd.randint(0, len(finished))
    for chunk in (finished[:cut], finished[cut:], finished[: rnd.randint(0, len(finished))]):  # the last repeats
        for m in chunk:
            one.done(m.tp, m.offset)
        many.done_all(chunk)
        assert many.take_moved() == one.take_moved()
    assert many.in_flight == one.in_flight == len(messages) - len(finished)


def _ticket(tracker: OffsetTracker, offset: int, pending: int, tp: TopicPartition = TP) -> Ticket:
    ticket = tracker.owe(tp, offset, pending)
    assert ticket is not None
    return ticket


def test_an_offset_waits_for_every_hook() -> None:
    tracker = OffsetTracker()
    t = _ticket(tracker, 10, 2)
    tracker.finish(t)
    assert tracker.take_moved() == {}
    tracker.finish(t)
    assert tracker.take_moved() == {TP: 11}
    assert tracker.take_moved() == {}, "only what advanced since the last call"
    assert tracker.uncommitted == 0


def test_a_slow_earlier_message_holds_back_later_ones() -> None:
    tracker = OffsetTracker()
    first, second, third = (_ticket(tracker, o, 1) for o in (0, 1, 2))
    tracker.finish(third)
    tracker.finish(second)
    assert tracker.take_moved() == {}
    tracker.finish(first)
    assert tracker.take_moved() == {TP: 3}


def test_messages_without_hooks_are_done_at_once_but_keep_their_place() -> None:
    tracker = OffsetTracker()
    owed = _ticket(tracker, 0, 1)
    _ticket(tracker, 1, 0)
    assert tracker.take_moved() == {}
    tracker.finish(owed)
    assert tracker.take_moved() == {TP: 2}


def test_partitions_are_independent() -> None:
    tracker = OffsetTracker()
    _ticket(tracker, 0, 1)
    other = _ticket(tracker, 5, 1, OTHER)
    tracker.finish(other)
    assert tracker.take_moved() == {OTHER: 6}


def test_a_refetched_offset_is_not_owed_twice() -> None:
    tracker = OffsetTracker()
    t = _ticket(tracker, 3, 1)
    assert tracker.owe(TP, 3, 1) is None
    assert tracker.owe(TP, 2, 1) is None
    tracker.finish(t)
    assert tracker.take_moved() == {TP: 4}


def test_a_late_finisher_from_a_revoked_assignment_counts_for_nothing() -> None:
    tracker = OffsetTracker()
    old = _ticket(tracker, 7, 2)
    tracker.forget([TP])
    assert not tracker.current(old)
    new = _ticket(tracker, 7, 2)  # the partition came back and the message was read again
    tracker.finish(old)
    tracker.finish(new)
    assert tracker.take_moved() == {}, "the old delivery must not complete the new one"
    tracker.finish(new)
    assert tracker.take_moved() == {TP: 8}


def test_done_twice_for_one_ticket_never_goes_negative_or_skips() -> None:
    tracker = OffsetTracker()
    a = _ticket(tracker, 0, 1)
    b = _ticket(tracker, 1, 1)
    tracker.finish(a)
    tracker.finish(a)
    assert tracker.take_moved() == {TP: 1}
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
            tracker.finish(tickets[i])
            remaining[i] -= 1
        committed = tracker.take_moved().get(TP, committed)
        prefix = 0
        while prefix < len(remaining) and remaining[prefix] == 0:
            prefix += 1
        assert committed == prefix
    assert committed == len(pendings)
    assert tracker.uncommitted == 0
