"""Backpressure of the hook runner: a webhook that owes `max_backlog` messages pauses only the partitions of the
topics feeding it, and they resume once it has room; fetches never ask for more than a reading webhook has room
for."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from algorun.api.configs import HookConfig, HookTarget, Identity
from algorun.bus.interface import Bus, Consumer
from algorun.bus.types import TopicPartition
from algorun.hooks.runner import FETCH_MAX, HookRunner
from algorun.hooks.settings import build_settings

A0, A1, B0 = TopicPartition("a", 0), TopicPartition("a", 1), TopicPartition("b", 0)


class FakeConsumer:
    def __init__(self) -> None:
        self.owned = {A0, A1, B0}
        self.paused: set[TopicPartition] = set()

    def assignment(self) -> set[TopicPartition]:
        return set(self.owned)

    def pause(self, tps: Iterable[TopicPartition]) -> None:
        self.paused |= set(tps)

    def resume(self, tps: Iterable[TopicPartition]) -> None:
        self.paused -= set(tps)


def _runner() -> HookRunner:
    config = HookConfig(
        identity=Identity(deployment_owner="o", deployment_name="d", pipeline_owner="o", pipeline_name="p"),
        consumer_group="g",
        dead_letter_topic="dlq",
        inputs={"slow": ["a"], "fast": ["b"]},
        web_hooks=[
            HookTarget(pipeline_hook_input_name="slow", web_hook_url="http://slow/"),
            HookTarget(pipeline_hook_input_name="fast", web_hook_url="http://fast/"),
        ],
    )
    settings = build_settings(config, {"ALGORUN_HOOK_MAX_BACKLOG": "10"})
    return HookRunner(config, settings, cast(Bus, None), cast(Any, None))


def test_a_full_webhook_pauses_only_its_topics_and_resumes_when_it_has_room() -> None:
    runner, consumer = _runner(), FakeConsumer()
    c = cast(Consumer, consumer)
    runner.hooks["slow-0"].owed = 10
    runner._apply_backpressure(c)
    assert consumer.paused == {A0, A1}, "the other input keeps flowing"
    runner.hooks["slow-0"].owed = 9
    runner._apply_backpressure(c)
    assert consumer.paused == set()


def test_newly_assigned_partitions_of_a_full_topic_are_paused_too() -> None:
    runner, consumer = _runner(), FakeConsumer()
    c = cast(Consumer, consumer)
    consumer.owned = {A0, B0}
    runner.hooks["slow-0"].owed = 10
    runner._apply_backpressure(c)
    consumer.owned.add(A1)
    runner._apply_backpressure(c)
    assert consumer.paused == {A0, A1}


def test_fetch_size_is_bounded_by_the_readers_room() -> None:
    runner = _runner()
    assert runner._fetch_size() == min(FETCH_MAX, 10)
    runner.hooks["fast-0"].owed = 7
    assert runner._fetch_size() == 3
    runner.hooks["slow-0"].owed = 10  # full: paused, so it does not limit the others
    assert runner._fetch_size() == 3
    runner.hooks["fast-0"].owed = 10  # every webhook full: their topics are paused, the rest may flow freely
    assert runner._fetch_size() == FETCH_MAX
