"""Runner throughput: passthrough of 1 KB messages on a real broker, in one run, as ratios and absolute figures.

- raw: a plain confluent-kafka consume -> produce loop (idempotent producer, the bus's settings, periodic commits);
- python: the runner with the python executor (an in-process passthrough function), ratio to raw (target >= 0.7);
- http: the runner against a minimal aiohttp algo in its own process (target >= 5,000/s), ratio to python;
- exec streaming and exec per-message (one process per message).

Throughput is measured from the first output to the last (group join and startup excluded), by polling the output
topic's end offset. Each case runs in its own process (as a runner is deployed), with the cyclic collector tuned as
`algorun runner` tunes it. Reported per case: resident memory (VmRSS), and the CPU time its process spent per
message (all its threads, from opening the bus to the end). CPU per message is steadier than throughput when the
broker shares the cores; `python_over_raw_by_cpu` is the ratio on equal CPU. The target stays the throughput ratio.
raw, bus passthrough and python run in `BENCH_ROUNDS` interleaved rounds (best of each, plus the median of the
per-round python/raw ratios); which runs first rotates from round to round (`benchmarks/_rounds.py`).
Starts a throwaway test-bed broker unless BENCH_KAFKA=host:port is set.

    .venv/bin/python -m benchmarks.runner            # or: make bench
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
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections import deque  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

SCRIPT = Path(__file__).resolve()
REPO = SCRIPT.parents[1]
sys.path.insert(0, str(REPO))

from confluent_kafka import Consumer, Producer  # noqa: E402
from confluent_kafka import TopicPartition as TP  # noqa: E402

from algorun.bus import Bus, KafkaSettings, TopicSpec, contract, open_bus  # noqa: E402
from algorun.bus.kafka.consumer import CONSUMER_DEFAULTS  # noqa: E402
from algorun.bus.kafka.producer import PRODUCER_DEFAULTS  # noqa: E402
from algorun.runner.config import RunnerOptions  # noqa: E402
from algorun.runner.executors import create  # noqa: E402
from algorun.runner.service import Runner  # noqa: E402
from benchmarks._broker import kafka_bootstrap  # noqa: E402
from benchmarks._rounds import rotated  # noqa: E402
from benchmarks._targets import report  # noqa: E402
from tests.support.runner_configs import names, runner_config  # noqa: E402

N = int(os.environ.get("BENCH_MESSAGES", "200000"))  # ~2 s at raw speed: 50,000 gave a window too short to trust
N_HTTP = int(os.environ.get("BENCH_HTTP_MESSAGES", "30000"))
N_EXEC = int(os.environ.get("BENCH_EXEC_MESSAGES", "500"))
PARTITIONS = int(os.environ.get("BENCH_PARTITIONS", "4"))
VALUE = os.urandom(1024)


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
    """What a careful user writes for at-least-once with the same librdkafka settings: produce each consumed
    message, and commit a batch's offsets only once every output of it (and of every earlier batch) was
    acknowledged, asynchronously, at the runner's commit interval. Pipelined: it never waits for acks before
    consuming more (a flush per batch would make the baseline slower than a careful user's loop)."""
    conf: dict[str, Any] = {"bootstrap.servers": bootstrap, **CONSUMER_DEFAULTS, "group.id": uuid.uuid4().hex}
    conf["auto.offset.reset"] = "earliest"
    c = Consumer(conf)
    p = Producer({"bootstrap.servers": bootstrap, **PRODUCER_DEFAULTS})
    c.subscribe([src])
    batches: deque[list[Any]] = deque()  # [unacknowledged count, {(topic, partition): next offset}]
    errors: list[Any] = []
    acked: dict[tuple[str, int], int] = {}
    done = 0
    last_commit = time.monotonic()

    def commit(force: bool) -> None:
        nonlocal last_commit
        while batches and batches[0][0] == 0:
            acked.update(batches.popleft()[1])
        now = time.monotonic()
        if acked and (force or now - last_commit >= 0.2):
            c.commit(offsets=[TP(t, part, off) for (t, part), off in acked.items()], asynchronous=not force)
            acked.clear()
            last_commit = now

    try:
        while done < count or batches:
            batch = c.consume(500, 0.2) if done < count else []
            if batch:
                state: list[Any] = [0, {}]
                offsets = state[1]

                def on_delivery(err: Any, _msg: Any, state: list[Any] = state) -> None:
                    if err is not None:
                        errors.append(err)  # a careful user would re-produce; the benchmark stops instead
                    state[0] -= 1

                for m in batch:
                    if m.error():
                        continue
                    state[0] += 1
                    offsets[(m.topic(), m.partition())] = m.offset() + 1
                    while True:
                        try:
                            p.produce(dst, m.value(), m.key(), headers=m.headers(), on_delivery=on_delivery)
                            break
                        except BufferError:
                            p.poll(0.01)
                    done += 1
                batches.append(state)
            p.poll(0 if done < count else 0.05)
            if errors:
                raise RuntimeError(f"produce failed: {errors[0]}")
            commit(force=False)
        commit(force=True)
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


def child_rss() -> dict[str, float]:
    """This process's resident memory now and at its peak (MiB)."""
    out: dict[str, float] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            out["rss_mib" if line.startswith("VmRSS") else "peak_rss_mib"] = round(int(line.split()[1]) / 1024, 1)
    return out


def case_config(case: str, n: dict[str, str], port: int) -> tuple[Any, dict[str, Any]]:
    """The runner config and options of one case."""
    if case == "python":
        return runner_config(n, entrypoint="tests.algos.pyalgos:passthrough"), {}
    if case == "http":
        config = runner_config(
            n,
            executor="http",
            entrypoint=None,
            input_type="Http",
            input_extra={"http": {"verb": "POST", "port": port, "path": "/echo"}},
            outputs=[{"name": "out", "outputDeliveryType": "HttpResponse", "topic": n["output"]}],
        )
        return config, {"key_concurrency": True}  # the keys are traceIDs: many requests in flight, order kept
    if case == "exec_streaming":
        entry = f"{sys.executable} tests/algos/exec_stream.py"
        return runner_config(n, executor="Executable", entrypoint=entry), {"exec_mode": "streaming"}
    if case == "exec_per_message":
        return runner_config(n, executor="Executable", entrypoint="cat"), {"concurrency": 8}
    raise ValueError(case)


async def child_main(case: str, bootstrap: str, n: dict[str, str], count: int, port: int) -> dict[str, Any]:
    """One case in its own process (as a runner is deployed): runs until SIGTERM (or `count` for the loops)."""
    import signal

    from algorun.cli.component_options import tune_gc

    tune_gc()  # as `algorun runner` does (every case, the raw loop included, runs with the same collector settings)
    bus = open_bus(KafkaSettings(bootstrap_servers=bootstrap))
    cpu_start = time.process_time()  # every thread of the process: the loop, librdkafka's, executor threads
    try:
        if case == "raw_confluent_kafka":
            await asyncio.to_thread(raw_loop, bootstrap, n["input"], n["output"], count)
        elif case == "bus_passthrough":
            await bus_loop(bus, n["input"], n["output"], count)
        else:
            config, opts = case_config(case, n, port)
            options = RunnerOptions(workdir=REPO, health_port=0).model_copy(update=opts)
            runner = Runner(config, options, bus, create(config, options))
            stop = asyncio.Event()
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
            await runner.run(stop)
    finally:
        await bus.close()
    return {**child_rss(), "cpu_us_per_message": round((time.process_time() - cpu_start) / count * 1e6, 2)}


async def run_case(bootstrap: str, bus: Bus, case: str, count: int, port: int = 0) -> dict[str, float]:
    """Fill an input topic, start the case in a child process, measure its output rate, stop it."""
    n = names(f"bench-{case.replace('_', '-')}")
    await topics(bus, n)
    await asyncio.to_thread(fill, bootstrap, n["input"], count)
    args = [sys.executable, str(SCRIPT), "--child", json.dumps([case, bootstrap, n, count, port])]
    proc = await asyncio.create_subprocess_exec(*args, cwd=REPO, stdout=asyncio.subprocess.PIPE)
    try:
        rate = await measure(bootstrap, n["output"], count)
        if case in LOOP_CASES:  # they end by themselves once every output is acknowledged, then report
            await asyncio.wait_for(proc.wait(), 60)
    finally:
        if proc.returncode is None:
            proc.terminate()  # a runner stops (and reports) on SIGTERM
        stdout, _ = await proc.communicate()
        # A standing broker (BENCH_KAFKA) would otherwise keep every case's hundreds of MB.
        await bus.delete_topics([n["input"], n["output"], n["dlq"]])
    result: dict[str, float] = {"messages_per_s": round(rate), "messages": count}
    result.update(json.loads(stdout.decode().strip().splitlines()[-1]))
    if case in LOOP_CASES:
        del result["rss_mib"], result["peak_rss_mib"]  # a loop, not a runner: its memory says nothing
    return result


LOOP_CASES = ("raw_confluent_kafka", "bus_passthrough")
CASES = ("raw_confluent_kafka", "bus_passthrough", "python", "http", "exec_streaming", "exec_per_message")
ROUND_CASES = ("raw_confluent_kafka", "bus_passthrough", "python")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
"""A multiple of the three cases compared: each takes each place in a round's order once (`benchmarks/_rounds.py`)."""


async def suite(bootstrap: str, cases: list[str]) -> dict[str, Any]:
    bus = open_bus(KafkaSettings(bootstrap_servers=bootstrap))
    out: dict[str, Any] = {}
    counts = {"http": N_HTTP, "exec_streaming": N_HTTP, "exec_per_message": N_EXEC}
    rounds: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    try:
        # The cases compared as a ratio run in interleaved rounds (the broker shares this machine, so noise only
        # slows a run down): each figure is the best of its rounds, and the median of the per-round ratios is shown.
        compared = [c for c in cases if c in ROUND_CASES]
        for round_index in range(ROUNDS):
            for case in rotated(compared, round_index):
                result = await run_case(bootstrap, bus, case, N)
                rounds.setdefault(case, []).append(result["messages_per_s"])
                cpu.setdefault(case, []).append(result["cpu_us_per_message"])
                if result["messages_per_s"] >= out.get(case, {}).get("messages_per_s", 0):
                    out[case] = result
        for case in (c for c in cases if c not in ROUND_CASES):
            if case == "http":
                port = free_port()
                algo = subprocess.Popen([sys.executable, "-m", "tests.algos.http_algo", str(port)], cwd=REPO)  # noqa: ASYNC220
                try:
                    out[case] = await run_case(bootstrap, bus, case, N_HTTP, port)
                finally:
                    algo.terminate()
                    algo.wait(10)
            else:
                out[case] = await run_case(bootstrap, bus, case, counts.get(case, N))
    finally:
        await bus.close()
    for case, rates in rounds.items():
        out[case]["rounds_messages_per_s"] = [round(r) for r in rates]
        out[case]["rounds_cpu_us_per_message"] = cpu[case]
    rate = {k: v["messages_per_s"] for k, v in out.items()}
    ratios: dict[str, float] = {}
    for a, b in (
        ("python", "raw_confluent_kafka"),
        ("bus_passthrough", "raw_confluent_kafka"),
        ("python", "bus_passthrough"),
        ("http", "python"),
        ("exec_streaming", "python"),
    ):
        if a in rate and b in rate:
            ratios[f"{a}_over_{b}"] = round(rate[a] / rate[b], 2)
    out["ratios"] = ratios
    targets: dict[str, bool] = {}
    if "python_over_raw_confluent_kafka" in ratios:
        targets["python_over_raw>=0.7"] = rate["python"] / rate["raw_confluent_kafka"] >= 0.7
        pairs = zip(rounds["python"], rounds["raw_confluent_kafka"], strict=True)
        ratios["python_over_raw_median_of_rounds"] = round(statistics.median(p / r for p, r in pairs), 2)
        # Throughput on this machine depends on how the cores are shared with the broker; the CPU a case spends
        # per message does much less. This ratio is the throughput ratio the two would have on equal CPU.
        ratios["python_over_raw_by_cpu"] = round(min(cpu["raw_confluent_kafka"]) / min(cpu["python"]), 2)
    if "http" in rate:
        targets["http>=5000/s"] = rate["http"] >= 5000
    out["targets"] = targets
    return out


def free_port() -> int:
    from tests.support.procs import free_port as fp

    return fp()


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        case, bootstrap, n, count, port = json.loads(sys.argv[2])
        print(json.dumps(run_loop(child_main(case, bootstrap, n, count, port))), flush=True)
        return
    cases = [c for c in os.environ.get("BENCH_CASES", ",".join(CASES)).split(",") if c]
    result: dict[str, Any] = {"value_bytes": len(VALUE), "partitions": PARTITIONS, "cores": os.cpu_count()}
    with kafka_bootstrap() as bootstrap:
        result["runner"] = run_loop(suite(bootstrap, cases))
    print(json.dumps(result, indent=2))
    report_targets(result["runner"])


def report_targets(runner: dict[str, Any]) -> None:
    """The target lines (`benchmarks._targets`) of the cases that ran: python at >= 0.7x raw (the median of the
    rounds' ratios, as `make bench` compares with the peers), http at >= 5,000 msgs/s."""
    ratios = runner.get("ratios", {})
    if "python_over_raw_median_of_rounds" in ratios:
        ratio = ratios["python_over_raw_median_of_rounds"]
        report("runner.python_over_raw_median", ratio, ">=0.7", ratio >= 0.7)
    http = runner.get("http", {}).get("messages_per_s")
    if http is not None:
        report("runner.http_msgs_per_s", http, ">=5000", http >= 5000)


def run_loop(coro: Any) -> Any:
    """uvloop when installed (as `algorun runner` uses it), else asyncio."""
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


if __name__ == "__main__":
    main()
