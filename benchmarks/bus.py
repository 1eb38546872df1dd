"""Data-plane throughput: algorun's bus versus raw confluent-kafka on the same broker, in the same run.

Prints one JSON object: messages/s for produce (until every message is acknowledged) and consume (until every
message is read) of 1 KB messages on 1 and 4 partitions, the ratio algorun/raw, and the local backend's figures
in one process. Starts a throwaway test-bed broker (tests.support.kafka) unless BENCH_KAFKA=host:port is set.

    .venv/bin/python benchmarks/bus.py            # or: make bench
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from confluent_kafka import Consumer, Producer

from algorun.bus import Bus, TopicSpec, open_bus
from algorun.bus.kafka.consumer import CONSUMER_DEFAULTS
from algorun.bus.kafka.producer import PRODUCER_DEFAULTS

N = int(os.environ.get("BENCH_MESSAGES", "100000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
VALUE = os.urandom(1024)
HEADERS = [("traceID", uuid.uuid4().hex.encode()), ("messageDataType", b"Embedded")]


def raw_produce(bootstrap: str, topic: str) -> float:
    conf: dict[str, Any] = {"bootstrap.servers": bootstrap, **PRODUCER_DEFAULTS}
    p = Producer(conf)
    acked = 0

    def on_delivery(err: Any, msg: Any) -> None:
        nonlocal acked
        if err is None:
            acked += 1

    start = time.perf_counter()
    for i in range(N):
        while True:
            try:
                p.produce(topic, VALUE, str(i).encode(), headers=HEADERS, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.01)
        if i % 1000 == 0:
            p.poll(0)
    p.flush()
    elapsed = time.perf_counter() - start
    assert acked == N, acked
    return N / elapsed


def raw_consume(bootstrap: str, topic: str) -> float:
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "group.id": f"raw-{uuid.uuid4().hex}",
        "auto.offset.reset": "earliest",
        **CONSUMER_DEFAULTS,
    }
    c = Consumer(conf)
    c.subscribe([topic])
    got = 0
    start = None
    while got < N:
        batch = c.consume(500, 1.0)
        if batch and start is None:
            start = time.perf_counter()
        for m in batch:
            if m.error() is None:
                m.value()
                got += 1
    assert start is not None
    elapsed = time.perf_counter() - start
    c.close()
    return N / elapsed


async def bus_produce(bus: Bus, topic: str) -> float:
    async with bus.producer() as p:
        start = time.perf_counter()
        futures = []
        for i in range(N):
            futures.append(p.produce(topic, VALUE, key=str(i).encode(), headers=HEADERS))
            if i % 1000 == 0:
                await asyncio.sleep(0)  # let deliveries resolve, as a real producer loop would
        await asyncio.gather(*futures)
        elapsed = time.perf_counter() - start
    return N / elapsed


async def bus_consume(bus: Bus, topic: str) -> float:
    async with bus.consumer(f"bench-{uuid.uuid4().hex}", [topic]) as c:
        got = 0
        start = None
        while got < N:
            batch = await c.getmany(max_messages=500, max_wait=1.0)
            if batch and start is None:
                start = time.perf_counter()
            got += len(batch)
        assert start is not None
        elapsed = time.perf_counter() - start
    return N / elapsed


async def kafka_suite(bootstrap: str) -> dict[str, Any]:
    bus = open_bus(f"kafka://{bootstrap}")
    out: dict[str, Any] = {}
    for partitions in (1, 4):
        # Interleaved, best of ROUNDS: the broker shares this machine, so single runs are noisy.
        rp = bp = rc = bc = 0.0
        for _ in range(ROUNDS):
            raw_topic, our_topic = f"bench-raw-{uuid.uuid4().hex[:8]}", f"bench-bus-{uuid.uuid4().hex[:8]}"
            await bus.create_topics([TopicSpec(raw_topic, partitions), TopicSpec(our_topic, partitions)])
            rp = max(rp, await asyncio.to_thread(raw_produce, bootstrap, raw_topic))
            bp = max(bp, await bus_produce(bus, our_topic))
            rc = max(rc, await asyncio.to_thread(raw_consume, bootstrap, raw_topic))
            bc = max(bc, await bus_consume(bus, our_topic))
            await bus.delete_topics([raw_topic, our_topic])
        out[f"{partitions}_partition"] = {
            "produce": {"raw_msgs_per_s": round(rp), "algorun_msgs_per_s": round(bp), "ratio": round(bp / rp, 3)},
            "consume": {"raw_msgs_per_s": round(rc), "algorun_msgs_per_s": round(bc), "ratio": round(bc / rc, 3)},
        }
    await bus.close()
    return out


async def local_suite() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as d:
        bus = open_bus(f"local://{d}/bench.db")
        out: dict[str, Any] = {}
        for partitions in (1, 4):
            topic = f"bench-{partitions}"
            await bus.create_topics([TopicSpec(topic, partitions)])
            out[f"{partitions}_partition"] = {
                "produce_msgs_per_s": round(await bus_produce(bus, topic)),
                "consume_msgs_per_s": round(await bus_consume(bus, topic)),
            }
        await bus.close()
    return out


def main() -> None:
    result: dict[str, Any] = {"messages": N, "rounds": ROUNDS, "value_bytes": len(VALUE), "cores": os.cpu_count()}
    bootstrap = os.environ.get("BENCH_KAFKA")
    broker = None
    if not bootstrap:
        from tests.support import testbin
        from tests.support.kafka import start_kafka

        workdir = Path(tempfile.mkdtemp(prefix="algorun-bench-kafka-"))
        broker = start_kafka(testbin.root() / "kafka" / "libs", workdir)
        bootstrap = broker.bootstrap("PLAINTEXT")
    try:
        result["kafka"] = asyncio.run(kafka_suite(bootstrap))
    finally:
        if broker is not None:
            broker.stop()
    result["local"] = asyncio.run(local_suite())
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
