"""Backpressure of the hook runner: a webhook that owes `max_backlog` messages pauses only the partitions of the
topics feeding it, and they resume once it has room; fetches never ask for more than a reading webhook has room
for."""

from __future__ import annotations

from typing import cast

from algorun.bus.interface import Consumer
from algorun.bus.types import TopicPartition
from algorun.hooks.service import FETCH_MAX
from tests.support.fakes import PausableConsumer
from tests.support.hook_runner import slow_and_fast_runner

A0, A1, B0 = TopicPartition("a", 0), TopicPartition("a", 1), TopicPartition("b", 0)


def test_a_full_webhook_pauses_only_its_topics_and_resumes_when_it_has_room() -> None:
    runner, consumer = slow_and_fast_runner(), PausableConsumer({A0, A1, B0})
    c = cast(Consumer, consumer)
    runner.hooks["slow-0"].owed = 10
    runner._apply_backpressure(c)
    assert consumer.paused == {A0, A1}, "the other input keeps flowing"
    runner.hooks["slow-0"].owed = 9
    runner._apply_backpressure(c)
    assert consumer.paused == set()


def test_newly_assigned_partitions_of_a_full_topic_are_paused_too() -> None:
    runner, consumer = slow_and_fast_runner(), PausableConsumer({A0, A1, B0})
    c = cast(Consumer, consumer)
    consumer.owned = {A0, B0}
    runner.hooks["slow-0"].owed = 10
    runner._apply_backpressure(c)
    consumer.owned.add(A1)
    runner._apply_backpressure(c)
    assert consumer.paused == {A0, A1}


def test_fetch_size_is_bounded_by_the_readers_room() -> None:
    runner = slow_and_fast_runner()
    assert runner._fetch_size() == min(FETCH_MAX, 10)
    runner.hooks["fast-0"].owed = 7
    assert runner._fetch_size() == 3
    runner.hooks["slow-0"].owed = 10  # full: paused, so it does not limit the others
    assert runner._fetch_size() == 3
    runner.hooks["fast-0"].owed = 10  # every webhook full: their topics are paused, the rest may flow freely
    assert runner._fetch_size() == FETCH_MAX
