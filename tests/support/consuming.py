"""Reading a consumer in bus tests: a number of messages within a deadline, or none more, never a sleep."""

from __future__ import annotations

import asyncio

from algorun.bus import Consumer, Message


async def consume_n(consumer: Consumer, n: int, within: float = 30.0) -> list[Message]:
    """Exactly the first `n` messages the consumer yields; fails if they do not arrive in time."""
    out: list[Message] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while len(out) < n:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise AssertionError(f"got {len(out)} of {n} messages within {within}s")
        out.extend(await consumer.getmany(max_messages=n - len(out), max_wait=min(1.0, remaining)))
    assert len(out) == n, f"got {len(out)} messages, expected {n}"
    return out


async def assert_nothing_more(consumer: Consumer, wait: float = 1.0) -> None:
    extra = await consumer.getmany(max_wait=wait)
    assert extra == [], f"unexpected messages: {[(m.topic, m.partition, m.offset) for m in extra]}"
