"""Local-log specifics: several producer processes on one file, retention, wake-ups, reading without a group."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

import algorun.bus.local.bus as local_bus
from algorun.bus import TopicPartition, TopicSpec, open_bus
from tests.support.consuming import consume_n
from tests.support.waiting import wait_until

PRODUCER = """
import asyncio, sys
from algorun.bus import open_bus
async def main():
    bus = open_bus(sys.argv[1])
    async with bus.producer() as p:
        for i in range(300):
            p.produce("shared", f"{sys.argv[2]}:{i}".encode(), key=sys.argv[2].encode())
            if i % 50 == 0:
                await p.flush()
    await bus.close()
asyncio.run(main())
"""


async def test_several_producer_processes_share_one_log(tmp_path: Path) -> None:
    url = f"local://{tmp_path}/log.db"
    bus = open_bus(url)
    await bus.create_topics([TopicSpec("shared", 2)])
    async with bus.consumer("g", ["shared"]) as c:
        procs = [await asyncio.create_subprocess_exec(sys.executable, "-c", PRODUCER, url, f"p{n}") for n in range(3)]
        got = await consume_n(c, 900, within=60)
        assert [await p.wait() for p in procs] == [0, 0, 0]
    per_producer: dict[str, list[int]] = {}
    for m in got:
        name, i = m.value.decode().split(":")
        per_producer.setdefault(name, []).append(int(i))
    assert all(seq == list(range(300)) for seq in per_producer.values())  # each producer's order is kept
    assert len({(m.partition, m.offset) for m in got}) == 900  # offsets are unique
    await bus.close()


async def test_retention_by_count_and_age(tmp_path: Path) -> None:
    bus = open_bus(f"local://{tmp_path}/log.db")
    await bus.create_topics(
        [TopicSpec("count", config={"retention.messages": "5"}), TopicSpec("age", config={"retention.ms": "0"})]
    )
    async with bus.producer() as p:
        for i in range(12):
            await p.send("count", str(i).encode())
            await p.send("age", str(i).encode())
    await asyncio.to_thread(_enforce, f"{tmp_path}/log.db")
    lag = await bus.lag("g", ["count", "age"])
    assert (lag[TopicPartition("count", 0)].start, lag[TopicPartition("count", 0)].end) == (7, 12)
    assert lag[TopicPartition("age", 0)].start == 12
    async with bus.consumer("g", ["count"]) as c:
        got = await consume_n(c, 5)
        assert [m.value for m in got] == [str(i).encode() for i in range(7, 12)]
    await bus.close()


async def test_retention_applies_to_a_log_nobody_writes_to_any_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Producers enforce retention as they write; once they stop, a reading consumer still ages the log out."""
    monkeypatch.setattr(local_bus, "RETENTION_EVERY_S", 0.2)
    bus = open_bus(f"local://{tmp_path}/log.db")
    await bus.create_topics([TopicSpec("aging", config={"retention.ms": "300"})])
    async with bus.producer() as p:
        for i in range(12):
            await p.send("aging", str(i).encode())
    async with bus.consumer("g", ["aging"]) as c:
        assert len(await consume_n(c, 12)) == 12

        async def aged_out() -> bool:
            await c.getmany(max_wait=0.1)  # a consumer at work, nothing written
            return (await bus.lag("g", ["aging"]))[TopicPartition("aging", 0)].start == 12

        await wait_until(aged_out, 20, "the idle log's messages to age out")
    await bus.close()


def _enforce(path: str) -> None:
    from algorun.bus.local.store import Store

    s = Store(path)
    s.enforce_retention()
    s.close()


async def test_an_idle_consumer_wakes_on_produce_without_polling(tmp_path: Path) -> None:
    url = f"local://{tmp_path}/log.db"
    bus = open_bus(url)
    await bus.create_topics([TopicSpec("t")])
    async with bus.consumer("g", ["t"]) as c:
        assert await c.getmany(max_wait=0.1) == []
        waiting = asyncio.create_task(c.getmany(max_wait=30))
        await asyncio.sleep(0)  # let it start waiting
        script = PRODUCER.replace('"shared"', '"t"').replace("range(300)", "range(1)")
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script, url, "x")
        assert await proc.wait() == 0
        # The other process poked us when it committed: the message is here well before the 1 s fallback poll.
        got = await asyncio.wait_for(waiting, 0.9)
        assert [m.value for m in got] == [b"x:0"]
    await bus.close()


async def test_reading_without_a_group_sees_everything_and_commits_nothing(tmp_path: Path) -> None:
    bus = open_bus(f"local://{tmp_path}/log.db")
    await bus.create_topics([TopicSpec("t", 3)])
    async with bus.producer() as p:
        await asyncio.gather(*[p.produce("t", str(i).encode(), key=str(i).encode()) for i in range(30)])
    for _ in range(2):
        async with bus.consumer(None, ["t"]) as c:
            got = await consume_n(c, 30)
            assert sorted(int(m.value) for m in got) == list(range(30))
    await bus.close()
