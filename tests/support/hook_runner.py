"""Helpers of the hook tests: waiting on conditions (never on sleeps), a hook runner in this event loop,
producing input messages, and reading a topic back."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import aiohttp

from algorun.api.configs import HookConfig, HookTarget, Identity
from algorun.bus import Bus, KafkaSettings, contract
from algorun.bus.types import Message
from algorun.hooks.metrics import HookMetrics
from algorun.hooks.service import HookRunner
from algorun.hooks.settings import build_settings
from tests.support.waiting import wait_until

SECRET = "hook-signing-secret"
POLL_S = 0.05


def kafka_settings(bootstrap: str) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=bootstrap, client_config_overrides={"log_level": 0})


def hook_config(inputs: dict[str, list[str]], dlq: str, hooks: list[HookTarget]) -> HookConfig:
    return HookConfig(
        identity=Identity(deployment_owner="acme", deployment_name="hooks", pipeline_owner="a", pipeline_name="b"),
        consumer_group=f"hook-test-{uuid.uuid4().hex[:8]}",
        dead_letter_topic=dlq,
        inputs=inputs,
        web_hooks=hooks,
    )


@asynccontextmanager
async def running_hooks(bus: Bus, config: HookConfig, env: dict[str, str]) -> AsyncIterator[HookRunner]:
    """A hook runner in this event loop, yielded once it consumes (partitions assigned), stopped after."""
    settings = build_settings(config, {"ALGORUN_HOOK_SECRET": SECRET, **env})
    stop = asyncio.Event()
    async with aiohttp.ClientSession() as session:
        runner = HookRunner(config, settings, bus, session, metrics=HookMetrics())
        task = asyncio.ensure_future(runner.run(stop))
        try:
            await wait_until(lambda: task.done() or runner.not_ready_reason() is None, 60, "the runner to consume")
            if task.done():
                task.result()  # raises what ended it
            yield runner
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)


async def produce(bus: Bus, topic: str, count: int, prefix: str = "trace") -> list[bytes]:
    """`count` JSON messages with endpoint-style headers; returns their bodies."""
    bodies = []
    async with bus.producer() as producer:
        for i in range(count):
            trace = f"{prefix}-{i}"
            headers = contract.first_hop(trace_id=trace, content_type="application/json", endpoint_params="a=1")
            body = f'{{"i": {i}, "trace": "{trace}"}}'.encode()
            bodies.append(body)
            await producer.send(topic, body, key=trace.encode(), headers=headers)
    return bodies


async def read_topic(bus: Bus, topic: str, expected: int, limit: float = 30.0) -> list[Message]:
    """Every message of `topic` (no group), waiting until at least `expected` arrived or `limit` passed."""
    out: list[Message] = []
    deadline = time.monotonic() + limit
    async with bus.consumer(None, [topic]) as consumer:
        while time.monotonic() < deadline and len(out) < expected:
            out.extend(await consumer.getmany(500, 0.2))
        if expected == 0:  # "nothing there": one more full read to be sure
            out.extend(await consumer.getmany(500, 1.0))
    return out


def header(msg: Message, name: str) -> str | None:
    value = msg.header(name)
    return None if value is None else value.decode()


async def all_committed(bus: Bus, group: str, topics: list[str]) -> bool:
    """True when the group committed every message of `topics` (lag 0 on every partition)."""
    lags = await bus.lag(group, topics)
    return bool(lags) and all(p.lag == 0 and (p.committed is not None or p.end == p.start) for p in lags.values())


def slow_and_fast_runner() -> HookRunner:
    """A hook runner with no bus: webhook "slow" reads topic "a", "fast" reads "b", each may owe 10 messages."""
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
