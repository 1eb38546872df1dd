"""The at-least-once consume loop keeps fetching and dispatching while a commit is on its way to the broker: a
commit that takes long (a slow broker, a loaded machine) does not hold the messages that arrive meanwhile, and
commits still go one at a time.

Runs on the embedded local log; the consumer's commit is held at a gate the test opens, as a slow broker would."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from algorun.bus import TopicSpec, open_bus
from algorun.bus.types import Message, TopicPartition
from algorun.runner.commit import AtLeastOnce, Cycle
from tests.support.gated_commits import GatedCommits

TOPIC = "in"
WAIT_S = 10.0


class Tracker:
    """Every dispatched message counts as finished, so each commit has offsets to store."""

    in_flight = 0

    def __init__(self) -> None:
        self.moved: dict[TopicPartition, int] = {}

    def take_moved(self) -> dict[TopicPartition, int]:
        moved, self.moved = self.moved, {}
        return moved


class Loop:
    """The runner as the consume loop sees it: what it dispatches is recorded."""

    def __init__(self, consumer: GatedCommits) -> None:
        self.consumer = consumer
        self.tracker = Tracker()
        self.progress = SimpleNamespace(tracker=self.tracker)
        self.staging: list[Any] = []
        gauge = SimpleNamespace(set=lambda value: None)
        self.metrics = SimpleNamespace(in_flight=gauge, staged=gauge, runner_error=lambda where: None)
        self.options = SimpleNamespace(commit_interval_seconds=0.0)
        self.values: list[bytes] = []
        self.dispatched = asyncio.Event()

    def dispatch(self, messages: list[Message]) -> None:
        for m in messages:
            self.values.append(m.value)
            self.tracker.moved[m.tp] = m.offset + 1
        if messages:
            self.dispatched.set()

    def backpressure(self) -> None:
        return None

    def expire_staged(self) -> None:
        return None


async def _until(condition: Any, event: asyncio.Event) -> None:
    async with asyncio.timeout(WAIT_S):
        while not condition():
            event.clear()
            await event.wait()


async def test_messages_are_dispatched_while_a_commit_waits_for_the_broker(tmp_path: Path) -> None:
    bus = open_bus(f"local://{tmp_path / 'log.db'}")
    await bus.create_topics([TopicSpec(TOPIC, 1)])
    producer = bus.producer()
    gated = GatedCommits(bus.consumer("runner", [TOPIC]))
    loop = Loop(gated)
    stop = asyncio.Event()
    policy = AtLeastOnce()
    task = asyncio.ensure_future(policy.consume(cast(Cycle, loop), stop))
    try:
        await producer.send(TOPIC, b"first")
        await _until(lambda: gated.started >= 1, gated.changed)  # its commit now waits at the gate

        await producer.send(TOPIC, b"second")
        await _until(lambda: b"second" in loop.values, loop.dispatched)
        assert gated.running == 1, "the first commit is still on its way"
        assert gated.most_at_once == 1, "commits go one at a time"

        gated.gate.set()
        await _until(lambda: gated.started >= 2, gated.changed)  # the next commit takes the second message
    finally:
        gated.gate.set()
        stop.set()
        await asyncio.wait_for(task, WAIT_S)
        await policy.on_stop(cast(Cycle, loop))
        assert gated.most_at_once == 1
        await gated.consumer.close()
        await producer.close()
        await bus.close()
    committed = await _committed(tmp_path)
    assert committed == 2, "both messages' offsets are committed in the end"


async def _committed(tmp_path: Path) -> int | None:
    bus = open_bus(f"local://{tmp_path / 'log.db'}")
    try:
        lags = await bus.lag("runner", [TOPIC])
        return lags[TopicPartition(TOPIC, 0)].committed
    finally:
        await bus.close()
