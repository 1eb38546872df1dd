"""Runner throughput: passthrough of 1 KB messages on a real broker, in one run, as ratios and absolute figures.

- raw: a plain confluent-kafka consume -> produce loop (idempotent producer, the bus's settings, periodic commits);
- python: the runner with the python executor (an in-process passthrough function), ratio to raw (target >= 0.7);
- http: the runner against a minimal aiohttp algo in its own process (target >= 5,000/s), ratio to python;
- exec streaming and exec per-message (one process per message).

Throughput is measured from the first output to the last (group join and startup excluded), by polling the output
topic's end offset. The runner runs in this process; its resident memory (VmRSS) is reported after each case.
Starts a throwaway test-bed broker unless BENCH_KAFKA=host:port is set.

    .venv/bin/python benchmarks/runner.py            # or: make bench
"""

from __future__ import annotations

import os.path as _osp
import sys

# benchmarks/operator.py shadows the standard library's `operator` when this file runs as a script: drop the
# script's own directory from the import path before anything imports it.
sys.path[:] = [p for p in sys.path if _osp.abspath(p or ".") != _osp.dirname(_osp.abspath(__file__))]

import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from confluent_kafka import Consumer, Producer  # noqa: E402
from confluent_kafka import TopicPartition as TP  # noqa: E402

from algorun.bus import Bus, KafkaSettings, TopicSpec, contract, open_bus  # noqa: E402
from algorun.bus.kafka.consumer import CONSUMER_DEFAULTS  # noqa: E402
from algorun.bus.kafka.producer import PRODUCER_DEFAULTS  # noqa: E402
from algorun.runner.config import RunnerOptions  # noqa: E402
from algorun.runner.executors import create  # noqa: E402
from algorun.runner.service import Runner  # noqa: E402
from tests.algos.configs import names, runner_config  # noqa: E402

N = int(os.environ.get("BENCH_MESSAGES", "50000"))
N_HTTP = int(os.environ.get("BENCH_HTTP_MESSAGES", "30000"))
N_EXEC = int(os.environ.get("BENCH_EXEC_MESSAGES", "500"))
PARTITIONS = int(os.environ.get("BENCH_PARTITIONS", "4"))
VALUE = os.urandom(1024)


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def fill(bootstrap: str, topic: str, count: int) -> None:
    p = Producer({"bootstrap.servers": bootstrap, **PRODUCER_DEFAULTS})
    for i in range(count):
        trace = uuid.uuid4().hex
        headers = contract.first_hop(trace_id=trace, content_type="application/octet-stream")
        while True:
            try:
                p.produce(topic, VALUE, trace.encode(), headers=headers)
                break
            except BufferError:
                p.poll(0.01)
        if i % 1000 == 0:
            p.poll(0)
    p.flush()


def end_offset(c: Consumer, topic: str) -> int:
    return sum(c.get_watermark_offsets(TP(topic, p), timeout=5)[1] for p in range(PARTITIONS))


async def measure(bootstrap: str, topic: str, count: int, limit_s: float = 300.0) -> float:
    """Messages/s between the first and the `count`-th output."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-watch-{uuid.uuid4().hex}"})
    try:
        first_t: float | None = None
        first_n = 0
        deadline = time.monotonic() + limit_s
        while True:
            got = await asyncio.to_thread(end_offset, c, topic)
            now = time.perf_counter()
            if got and first_t is None:
                first_t, first_n = now, got
            if got >= count:
                assert first_t is not None
                return (got - first_n) / (now - first_t) if now > first_t else float("inf")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: {got} of {count} outputs")
            await asyncio.sleep(0.02)
    finally:
        c.close()


def raw_loop(bootstrap: str, src: str, dst: str, count: int) -> None:
    conf: dict[str, Any] = {"bootstrap.servers": bootstrap, **CONSUMER_DEFAULTS, "group.id": uuid.uuid4().hex}
    conf["auto.offset.reset"] = "earliest"
    c = Consumer(conf)
    p = Producer({"bootstrap.servers": bootstrap, **PRODUCER_DEFAULTS})
    c.subscribe([src])
    done = 0
    try:
        while done < count:
            batch = c.consume(500, 0.2)
            for m in batch:
                if m.error():
                    continue
                while True:
                    try:
                        p.produce(dst, m.value(), m.key(), headers=m.headers())
                        break
                    except BufferError:
                        p.poll(0.01)
                done += 1
            p.poll(0)
            if batch:
                c.commit(asynchronous=True)
        p.flush()
    finally:
        c.close()


async def bus_loop(bus: Bus, src: str, dst: str, count: int) -> None:
    """The floor under any runner: algorun's bus consuming and producing, nothing else."""
    consumer = bus.consumer(f"bench-{uuid.uuid4().hex}", [src])
    producer = bus.producer()
    done = 0
    while done < count:
        batch = await consumer.getmany(500, 0.2)
        for m in batch:
            producer.produce(dst, m.value, key=m.key, headers=m.headers)
        done += len(batch)
        consumer.store(batch)
    await producer.close()
    await consumer.close()


async def topics(bus: Bus, n: dict[str, str]) -> None:
    await bus.create_topics(
        [TopicSpec(t, partitions=PARTITIONS, replication_factor=1) for t in (n["input"], n["output"], n["dlq"])]
    )


async def run_case(bootstrap: str, bus: Bus, count: int, make_config: Any, **opts: Any) -> dict[str, float]:
    n = names("bench")
    await topics(bus, n)
    await asyncio.to_thread(fill, bootstrap, n["input"], count)
    config = make_config(n)
    options = replace(RunnerOptions(workdir=REPO, health_port=0), **opts)
    runner = Runner(config, options, bus, create(config, options))
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        rate = await measure(bootstrap, n["output"], count)
    finally:
        stop.set()
        await task
    return {"messages_per_s": round(rate), "rss_mib": round(rss_mib(), 1), "messages": count}


async def suite(bootstrap: str) -> dict[str, Any]:
    bus = open_bus(KafkaSettings(bootstrap_servers=bootstrap))
    out: dict[str, Any] = {}
    try:
        n = names("bench-raw")
        await topics(bus, n)
        await asyncio.to_thread(fill, bootstrap, n["input"], N)
        watcher = asyncio.create_task(measure(bootstrap, n["output"], N))
        await asyncio.to_thread(raw_loop, bootstrap, n["input"], n["output"], N)
        out["raw_confluent_kafka"] = {"messages_per_s": round(await watcher), "messages": N}

        n = names("bench-bus")
        await topics(bus, n)
        await asyncio.to_thread(fill, bootstrap, n["input"], N)
        watcher = asyncio.create_task(measure(bootstrap, n["output"], N))
        await bus_loop(bus, n["input"], n["output"], N)
        out["bus_passthrough"] = {"messages_per_s": round(await watcher), "messages": N}

        out["python"] = await run_case(
            bootstrap, bus, N, lambda n: runner_config(n, entrypoint="tests.algos.pyalgos:passthrough")
        )

        port = free_port()
        algo = subprocess.Popen([sys.executable, "-m", "tests.algos.http_algo", str(port)], cwd=REPO)  # noqa: ASYNC220
        try:
            out["http"] = await run_case(
                bootstrap,
                bus,
                N_HTTP,
                lambda n: runner_config(
                    n,
                    executor="http",
                    entrypoint=None,
                    input_type="Http",
                    input_extra={"http": {"verb": "POST", "port": port, "path": "/echo"}},
                    outputs=[{"name": "out", "outputDeliveryType": "HttpResponse", "topic": n["output"]}],
                ),
                key_concurrency=True,  # the keys are traceIDs: many requests in flight, per-key order kept
            )
        finally:
            algo.terminate()
            algo.wait(10)

        out["exec_streaming"] = await run_case(
            bootstrap,
            bus,
            N_HTTP,
            lambda n: runner_config(
                n, executor="Executable", entrypoint=f"{sys.executable} tests/algos/exec_stream.py"
            ),
            exec_mode="streaming",
        )
        out["exec_per_message"] = await run_case(
            bootstrap,
            bus,
            N_EXEC,
            lambda n: runner_config(n, executor="Executable", entrypoint="cat"),
            concurrency=8,
        )
    finally:
        await bus.close()
    raw = out["raw_confluent_kafka"]["messages_per_s"]
    py = out["python"]["messages_per_s"]
    out["ratios"] = {
        "python_over_raw": round(py / raw, 2),
        "bus_passthrough_over_raw": round(out["bus_passthrough"]["messages_per_s"] / raw, 2),
        "http_over_python": round(out["http"]["messages_per_s"] / py, 2),
        "exec_streaming_over_python": round(out["exec_streaming"]["messages_per_s"] / py, 2),
    }
    out["targets"] = {"python_over_raw>=0.7": py / raw >= 0.7, "http>=5000/s": out["http"]["messages_per_s"] >= 5000}
    return out


def free_port() -> int:
    from tests.support.procs import free_port as fp

    return fp()


def main() -> None:
    result: dict[str, Any] = {"value_bytes": len(VALUE), "partitions": PARTITIONS, "cores": os.cpu_count()}
    bootstrap = os.environ.get("BENCH_KAFKA")
    broker = None
    if not bootstrap:
        from tests.support import testbin
        from tests.support.kafka import start_kafka

        broker = start_kafka(testbin.root() / "kafka" / "libs", Path(tempfile.mkdtemp(prefix="algorun-bench-kafka-")))
        bootstrap = broker.bootstrap("PLAINTEXT")
    try:
        try:
            import uvloop

            result["runner"] = uvloop.run(suite(bootstrap))
        except ImportError:
            result["runner"] = asyncio.run(suite(bootstrap))
    finally:
        if broker is not None:
            broker.stop()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
