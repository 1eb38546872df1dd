"""Run a `Runner` inside a test, feed it, read what it wrote. Waits are on conditions, with timeouts."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from algorun.api.configs import RunnerConfig
from algorun.bus import Bus, Message, TopicSpec, contract
from algorun.runner.config import RunnerOptions
from algorun.runner.executors import create
from algorun.runner.service import Runner
from tests.support.paths import REPO


def options(**changes: Any) -> RunnerOptions:
    base = RunnerOptions(workdir=REPO, grace_seconds=10.0, commit_interval_seconds=0.05)
    return base.model_copy(update=changes)


async def create_topics(bus: Bus, config: RunnerConfig, partitions: int = 1) -> None:
    names = {t.topic for i in config.inputs for t in i.topics}
    names |= {o.topic for o in config.outputs if o.topic}
    names |= set(config.retry.retry_topics.values()) | {config.retry.dead_letter_topic}
    await bus.create_topics([TopicSpec(n, partitions=partitions, replication_factor=1) for n in sorted(names)])


@contextlib.asynccontextmanager
async def running(config: RunnerConfig, bus: Bus, opts: RunnerOptions | None = None) -> AsyncIterator[Runner]:
    o = opts or options()
    runner = Runner(config, o, bus, create(config, o))
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        yield runner
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def send(
    bus: Bus,
    topic: str,
    values: list[bytes],
    *,
    trace: Callable[[int], str] | None = None,
    run: bool = True,
    extra: list[tuple[str, bytes]] | None = None,
    partition: int | None = None,
) -> None:
    """`values` as first-hop messages (key = traceID), in order; to `partition`, else where their keys hash."""
    producer = bus.producer()
    try:
        acks = []
        for i, v in enumerate(values):
            trace_id = trace(i) if trace else contract.new_trace_id()
            headers = contract.first_hop(trace_id=trace_id, run=run, content_type="text/plain") + (extra or [])
            key = contract.message_key(trace_id)
            acks.append(producer.produce(topic, v, key=key, headers=headers, partition=partition))
        await asyncio.gather(*acks)
    finally:
        await producer.close()


async def collect(bus: Bus, topic: str, count: int, timeout: float = 30.0) -> list[Message]:  # noqa: ASYNC109
    """At least `count` messages of `topic` (all partitions, from the start), or fail after `timeout`."""
    consumer = bus.consumer(None, [topic])
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{topic}: {len(got)} of {count} messages within {timeout}s")
            got.extend(await consumer.getmany(max_messages=1000, max_wait=0.2))
    finally:
        await consumer.close()
    return got


async def nothing_more(bus: Bus, topic: str, expected: int, wait: float = 1.0) -> list[Message]:
    """Everything in `topic` after `wait` seconds, checked to be exactly `expected` messages."""
    consumer = bus.consumer(None, [topic])
    got: list[Message] = []
    deadline = time.monotonic() + wait
    try:
        while time.monotonic() < deadline:
            got.extend(await consumer.getmany(max_messages=1000, max_wait=0.1))
    finally:
        await consumer.close()
    assert len(got) == expected, f"{topic}: {len(got)} messages, expected {expected}"
    return got


def header(m: Message, name: str) -> str | None:
    return contract.get(m.headers, name)
