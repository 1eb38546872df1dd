"""Data-plane throughput: algorun's bus versus raw confluent-kafka on the same broker, in the same run.

Prints one JSON object: messages/s for produce (until every message is acknowledged) and consume (until every
message is read and its offset committed) of 1 KB messages on 1 and 4 partitions, the ratio algorun/raw, and the
local backend's figures in one process. Starts a throwaway test-bed broker (tests.support.kafka) unless
BENCH_KAFKA=host:port is set.

What is compared, so that the ratio means something:
- Both sides use the same librdkafka settings (the bus's PRODUCER_DEFAULTS / CONSUMER_DEFAULTS) and the same
  batching (linger.ms, consume batches of 500). Each client is connected and, for producers, has its idempotent
  producer id before the clock starts (one acknowledged warm-up message): startup is a fixed cost, not throughput,
  and it used to be inside the timed window of short runs, which pulled both figures down unevenly.
- raw produce is the loop a user writes by hand: `produce(..., headers=..., on_delivery=...)` with `poll(0)`
  every 1000 messages, a counter in the delivery callback, `flush()` at the end.
  algorun `produce` is one awaitable per message, each awaited in turn, the interface's per-message path
  (`asyncio.gather` would add a done-callback per future: asyncio's cost, not the bus's);
  algorun `produce_many` is the batch path (batches of 500, one awaitable each).
- raw consume does the work a consumer with at-least-once commits has to do: read every field the bus hands over
  (topic, partition, offset, key, value, headers, timestamp), remember the next offset per partition, commit
  synchronously at the end. algorun consume is `getmany(500)`, `store(batch)`, `commit()` at the end.
  `raw_value_only_msgs_per_s` is the old baseline (reads only the value, commits nothing), shown for reference.
- algorun's side runs on uvloop, the event loop of every algorun component (`algorun runner`, `endpoint`, `hook`),
  and the process tunes CPython's cyclic collector as those commands do (`component_options.tune_gc`). Both
  sides run in this one process, so the raw loops run with the same collector settings.
- Rounds are interleaved and each figure is the best of its rounds: the broker shares this machine, so noise
  only ever slows a run down. Median ratios are printed too.

    .venv/bin/python benchmarks/bus.py            # or: make bench
"""

from __future__ import annotations

import os.path as _osp
import sys

# benchmarks/operator.py shadows the standard library's `operator` when this file runs as a script: drop the
# script's own directory from the import path before anything imports it.
sys.path[:] = [p for p in sys.path if _osp.abspath(p or ".") != _osp.dirname(_osp.abspath(__file__))]
sys.path.insert(0, _osp.dirname(_osp.dirname(_osp.abspath(__file__))))

import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import uvloop  # noqa: E402
from confluent_kafka import Consumer, Producer  # noqa: E402
from confluent_kafka import TopicPartition as _TP  # noqa: E402

from algorun.bus import Bus, TopicSpec, open_bus  # noqa: E402
from algorun.bus.kafka.consumer import CONSUMER_DEFAULTS  # noqa: E402
from algorun.bus.kafka.producer import PRODUCER_DEFAULTS  # noqa: E402

N = int(os.environ.get("BENCH_MESSAGES", "100000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
BATCH = 500
VALUE = os.urandom(1024)
HEADERS = [("traceID", uuid.uuid4().hex.encode()), ("messageDataType", b"Embedded")]
KEYS = [str(i).encode() for i in range(N)]


def raw_produce(bootstrap: str, topic: str) -> float:
    p = Producer({"bootstrap.servers": bootstrap, **PRODUCER_DEFAULTS})
    acked = 0

    def on_delivery(err: Any, msg: Any) -> None:
        nonlocal acked
        if err is None:
            acked += 1

    p.produce(topic, b"warm-up", on_delivery=on_delivery)
    p.flush()
    acked = 0
    start = time.perf_counter()
    for i in range(N):
        while True:
            try:
                p.produce(topic, VALUE, KEYS[i], headers=HEADERS, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.01)
        if i % 1000 == 0:
            p.poll(0)
    p.flush()
    elapsed = time.perf_counter() - start
    assert acked == N, acked
    return N / elapsed


def raw_consume(bootstrap: str, topic: str, full: bool = True) -> float:
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "group.id": f"raw-{uuid.uuid4().hex}",
        "auto.offset.reset": "earliest",
        **CONSUMER_DEFAULTS,
    }
    c = Consumer(conf)
    c.subscribe([topic])
    total = N + 1  # the producer's warm-up message
    got = 0
    start = None
    next_offsets: dict[tuple[str, int], int] = {}
    while got < total:
        # librdkafka waits for the full count (or the timeout): never ask for more than is left.
        batch = c.consume(min(BATCH, total - got), 1.0)
        if batch and start is None:
            start = time.perf_counter()
        for m in batch:
            if m.error() is None:
                if full:
                    t, p, o = m.topic(), m.partition(), m.offset()
                    m.key()
                    m.headers()
                    m.timestamp()
                    next_offsets[(t, p)] = o + 1
                m.value()
                got += 1
    if full:
        c.commit(offsets=[_TP(t, p, o) for (t, p), o in next_offsets.items()], asynchronous=False)
    assert start is not None
    elapsed = time.perf_counter() - start
    c.close()
    return N / elapsed


def raw_consume_value_only(bootstrap: str, topic: str) -> float:
    return raw_consume(bootstrap, topic, full=False)


async def bus_produce(bus: Bus, topic: str) -> float:
    async with bus.producer() as p:
        await p.send(topic, b"warm-up")
        start = time.perf_counter()
        futures = []
        for i in range(N):
            futures.append(p.produce(topic, VALUE, key=KEYS[i], headers=HEADERS))
            if i % 1000 == 0:
                await asyncio.sleep(0)  # let deliveries resolve, as a real producer loop would
        for fut in futures:  # each acknowledgement awaited (and checked) in produce order
            await fut
        elapsed = time.perf_counter() - start
    return N / elapsed


async def bus_produce_many(bus: Bus, topic: str) -> float:
    async with bus.producer() as p:
        await p.send(topic, b"warm-up")
        start = time.perf_counter()
        batches = []
        for i in range(0, N, BATCH):
            batches.append(p.produce_many([(topic, VALUE, k, HEADERS, None) for k in KEYS[i : i + BATCH]]))
            await asyncio.sleep(0)
        outcomes = await asyncio.gather(*batches)
        elapsed = time.perf_counter() - start
    assert not any(outcomes), outcomes  # each batch's failures: none
    return N / elapsed


async def bus_consume(bus: Bus, topic: str) -> float:
    async with bus.consumer(f"bench-{uuid.uuid4().hex}", [topic]) as c:
        total = N + 1
        got = 0
        start = None
        while got < total:
            batch = await c.getmany(max_messages=min(BATCH, total - got), max_wait=1.0)
            if batch and start is None:
                start = time.perf_counter()
            c.store(batch)
            got += len(batch)
        await c.commit()
        assert start is not None
        elapsed = time.perf_counter() - start
    return N / elapsed


def _summary(raw: list[float], ours: list[float]) -> dict[str, Any]:
    return {
        "raw_msgs_per_s": round(max(raw)),
        "algorun_msgs_per_s": round(max(ours)),
        "ratio": round(max(ours) / max(raw), 3),
        "median_ratio": round(statistics.median(o / r for o, r in zip(ours, raw, strict=True)), 3),
    }


async def kafka_suite(bootstrap: str) -> dict[str, Any]:
    bus = open_bus(f"kafka://{bootstrap}")
    out: dict[str, Any] = {}
    for partitions in (1, 4):
        runs: dict[str, list[float]] = {k: [] for k in ("raw_p", "bus_p", "bus_pm", "raw_c", "raw_cv", "bus_c")}
        for _ in range(ROUNDS):
            names = [f"bench-{kind}-{uuid.uuid4().hex[:8]}" for kind in ("raw", "bus", "many")]
            raw_topic, our_topic, many_topic = names
            await bus.create_topics([TopicSpec(n, partitions) for n in names])
            runs["raw_p"].append(await asyncio.to_thread(raw_produce, bootstrap, raw_topic))
            runs["bus_p"].append(await bus_produce(bus, our_topic))
            runs["bus_pm"].append(await bus_produce_many(bus, many_topic))
            # Every consumer reads the same topic (the raw producer's), so they see the same batches.
            runs["raw_c"].append(await asyncio.to_thread(raw_consume, bootstrap, raw_topic))
            runs["bus_c"].append(await bus_consume(bus, raw_topic))
            runs["raw_cv"].append(await asyncio.to_thread(raw_consume_value_only, bootstrap, raw_topic))
            await bus.delete_topics(names)
        consume = _summary(runs["raw_c"], runs["bus_c"])
        consume["raw_value_only_msgs_per_s"] = round(max(runs["raw_cv"]))
        consume["ratio_to_value_only"] = round(max(runs["bus_c"]) / max(runs["raw_cv"]), 3)
        out[f"{partitions}_partition"] = {
            "produce": _summary(runs["raw_p"], runs["bus_p"]),
            "produce_many": _summary(runs["raw_p"], runs["bus_pm"]),
            "consume": consume,
        }
    await bus.close()
    return out


async def local_suite() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as d:
        bus = open_bus(f"local://{d}/bench.db")
        out: dict[str, Any] = {}
        for partitions in (1, 4):
            topic, many = f"bench-{partitions}", f"bench-many-{partitions}"
            await bus.create_topics([TopicSpec(topic, partitions), TopicSpec(many, partitions)])
            out[f"{partitions}_partition"] = {
                "produce_msgs_per_s": round(await bus_produce(bus, topic)),
                "produce_many_msgs_per_s": round(await bus_produce_many(bus, many)),
                "consume_msgs_per_s": round(await bus_consume(bus, topic)),
            }
        await bus.close()
    return out


def main() -> None:
    from algorun.cli.component_options import tune_gc

    tune_gc()
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
        result["kafka"] = uvloop.run(kafka_suite(bootstrap))
    finally:
        if broker is not None:
            broker.stop()
    result["local"] = uvloop.run(local_suite())
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
