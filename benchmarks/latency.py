"""End-to-end latency: HTTP request into the endpoint -> python algo -> python algo -> event hook -> webhook
receiver, under open-loop load, on the embedded local log and on the test-bed Kafka in the same run.

The pipeline runs under `algorun run` (its own process), the webhook receiver in another (`Receiver`), and the load
generator in this one. First the maximum rate is measured: `BENCH_BURST` requests sent closed-loop with
`BENCH_CONNECTIONS` in flight, divided by the time until the last webhook arrived. Then each load (10%, 50% and 80%
of that maximum) sends requests at fixed times for `BENCH_SECONDS`: a request's latency runs from the time it was
scheduled (so queueing in the generator counts) to the arrival of its webhook, matched by the traceID the endpoint
answered with. Printed per data plane and load: the rate offered, p50/p99/p99.9 in ms, and how many requests did not
arrive within the wait, and how many of the machine's cores were busy meanwhile (`machine_busy_cores`: everything
shares them, the broker and the load generator too, so a tail at a busy machine is the scheduler's as much as
algorun's).

Per hop, from the records' own timestamps (each component's write time, read back from the topics after the
loads; millisecond resolution): `endpoint` runs from a request's scheduled time to the endpoint's write of its
record, `parse` and `enrich` from the previous write to that algo's write (the previous producer's linger and
acknowledgement, the fetch, the run), `hook` from the last write to the webhook's arrival. Targets (issue 26) on
Kafka at 50% load: p50 <= 10 ms and p99 <= 25 ms end to end, each hop's p99 under 5 ms; printed as `target:`
lines (`benchmarks._targets`).

    .venv/bin/python -m benchmarks.latency          # or: make bench
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from algorun.api import load_pipeline
from algorun.bus import Bus, KafkaSettings, contract, open_bus
from benchmarks._broker import kafka_bootstrap
from benchmarks._targets import report
from benchmarks.local import STAGE  # one python-function stage of a benchmark pipeline

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "benchmarks" / "local_pipeline"
BURST = int(os.environ.get("BENCH_BURST", "3000"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "6"))
LOADS = (0.1, 0.5, 0.8)
VALUE = b"v" * 1024
TARGET_P50_MS, TARGET_P99_MS, TARGET_HOP_P99_MS = 10.0, 25.0, 5.0
WRITERS = (".endpoint.", ".parse.", ".enrich.")
"""The parts of the names of the topics that the endpoint, parse and enrich write (in the path's order)."""

PIPELINE = """
apiVersion: algo.run/v1beta1
kind: PipelineDeployment
metadata: {name: latency}
spec:
  deploymentOwner: bench
  deploymentName: NAME
  endpoint:
    paths: [{name: in, contentType: application/octet-stream, topic: {outputName: in, partitions: 1}}]
  algos:
STAGES
  eventHook:
    webHooks:
      - {pipelineHookInputName: results, webHookUrl: "HOOK_URL"}
  pipes:
    - {sourceName: Endpoint, sourceOutputName: in, destName: "bench/parse:1[1]", destInputName: data}
    - {sourceName: "bench/parse:1[1]", sourceOutputName: out, destName: "bench/enrich:1[1]", destInputName: data}
    - {sourceName: "bench/enrich:1[1]", sourceOutputName: out, destName: EventHook, destInputName: results}
"""


class Receiver:
    """The webhook receiver, in its own process as a real one is (sharing this process's event loop, it charged
    the load generator's work to the hook hop): the arrival time of each traceID, as this process's
    `time.perf_counter()`, followed through the receiver's long-polled `/arrivals`."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.changed = asyncio.Event()
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._follower: asyncio.Task[None] | None = None

    async def start(self) -> None:
        argv = [sys.executable, "-m", "benchmarks.latency", "--receiver", str(self.port)]
        self._proc = subprocess.Popen(argv, cwd=ROOT)  # noqa: ASYNC220 (started once, before any load)
        deadline = time.monotonic() + 30
        while not await asyncio.to_thread(answers, f"http://127.0.0.1:{self.port}/arrivals?after=-1"):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the webhook receiver did not start (exit {self._proc.poll()})")
            await asyncio.sleep(0.05)  # polling the receiver's port until it listens
        self._follower = asyncio.get_running_loop().create_task(self._follow())

    async def _follow(self) -> None:
        wall = time.time() - time.perf_counter()  # wall-clock seconds to this process's perf_counter seconds
        seen = 0
        async with aiohttp.ClientSession() as session:
            while True:
                async with session.get(f"http://127.0.0.1:{self.port}/arrivals?after={seen}") as resp:
                    items = await resp.json()
                for trace, at in items:
                    self.arrived.setdefault(trace, at - wall)
                seen += len(items)
                if items:
                    self.changed.set()

    async def stop(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            await asyncio.gather(self._follower, return_exceptions=True)
        if self._proc is not None:
            self._proc.terminate()
            await asyncio.to_thread(self._proc.wait, 10)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def serve_receiver(port: int) -> None:
    """The receiver process: answers 200 to every webhook and notes its traceID's arrival (`time.time()`);
    `GET /arrivals?after=N` answers the arrivals after the first N, waiting up to a second for one (N < 0: at
    once, for the probe that waits for the process to listen)."""
    import uvloop

    arrivals: list[tuple[str, float]] = []

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        arrivals.append((request.headers.get("X-Algorun-Trace-Id", ""), time.time()))
        grown.set()
        return web.Response(text="ok")

    async def follow(request: web.Request) -> web.Response:
        after = int(request.query["after"])
        if after >= 0 and len(arrivals) <= after:  # a negative `after` (the start-up probe) does not wait
            grown.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(grown.wait(), 1.0)
        return web.json_response(arrivals[max(0, after) :])

    async def serve() -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", hook)
        app.router.add_get("/arrivals", follow)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.Event().wait()

    grown = asyncio.Event()
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(serve())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def post(session: aiohttp.ClientSession, url: str) -> str:
    async with session.post(url, data=VALUE, headers={"Content-Type": "application/octet-stream"}) as resp:
        body = await resp.json()
        if resp.status != 202:
            raise RuntimeError(f"the endpoint answered {resp.status}: {body}")
        return str(body["traceID"])


async def wait_arrivals(receiver: Receiver, traces: list[str], limit_s: float) -> None:
    """Until every trace's webhook arrived, or `limit_s` passed (the missing ones are then reported)."""
    deadline = time.monotonic() + limit_s
    while sum(t in receiver.arrived for t in traces) < len(traces) and time.monotonic() < deadline:
        receiver.changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(receiver.changed.wait(), max(0.0, min(1.0, deadline - time.monotonic())))


async def maximum(session: aiohttp.ClientSession, url: str, receiver: Receiver) -> float:
    """Requests/s end to end in a closed-loop burst: from the first send to the last webhook."""
    traces: list[str] = []
    left = BURST
    started = time.perf_counter()

    async def sender() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            traces.append(await post(session, url))

    await asyncio.gather(*(sender() for _ in range(CONNECTIONS)))
    await wait_arrivals(receiver, traces, 120)
    last = max(receiver.arrived.get(t, 0.0) for t in traces)
    return len(traces) / (last - started)


async def open_loop(
    session: aiohttp.ClientSession, url: str, receiver: Receiver, rate: float
) -> tuple[dict[str, Any], dict[str, float]]:
    """Requests sent at fixed times, `rate` per second, for SECONDS; latency from each one's scheduled time.
    Returns the figures and each request's scheduled time (perf_counter) by traceID."""
    count = max(1, int(rate * SECONDS))
    scheduled: dict[str, float] = {}
    start = time.perf_counter() + 0.1
    busy_before = machine_jiffies()

    async def one(at: float) -> None:
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        scheduled[await post(session, url)] = at

    await asyncio.gather(*(one(start + i / rate) for i in range(count)))
    busy_after = machine_jiffies()
    traces = list(scheduled)
    await wait_arrivals(receiver, traces, 30)
    latencies = [(receiver.arrived[t] - at) * 1000 for t, at in scheduled.items() if t in receiver.arrived]
    out: dict[str, Any] = {"offered_per_s": round(rate), "requests": count, "missing": count - len(latencies)}
    busy, total = (after - before for after, before in zip(busy_after, busy_before, strict=True))
    out["machine_busy_cores"] = round(busy / total * (os.cpu_count() or 1), 2) if total else None
    out.update(spread(latencies))
    return out, scheduled


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine so far, from /proc/stat's first line (idle and iowait are not
    busy): how many cores were busy while a load ran, this benchmark's processes, the broker and anything else."""
    fields = [int(f) for f in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    total = sum(fields[:8])
    return total - fields[3] - fields[4], total


def spread(values: list[float]) -> dict[str, float]:
    """p50, p99 and p99.9 of `values` (ms), rounded to 0.1 ms; nothing for no values."""
    if not values:
        return {}
    return {f"p{name}_ms": round(percentile(values, q), 1) for name, q in (("50", 0.5), ("99", 0.99), ("999", 0.999))}


async def written_at(bus: Bus, topics: list[str]) -> dict[str, dict[str, float]]:
    """Each record's write time (ms since the epoch, from its timestamp) by topic and traceID: every record now in
    `topics`, read from the beginning without a group."""
    ends = await bus.lag("algorun-bench-latency-probe", topics)
    want = {topic: sum(lag.end for tp, lag in ends.items() if tp.topic == topic) for topic in topics}
    found: dict[str, dict[str, float]] = {topic: {} for topic in topics}
    consumer = bus.consumer(None, topics, from_beginning=True)
    deadline = time.monotonic() + 60
    try:
        while any(len(found[t]) < want[t] for t in topics) and time.monotonic() < deadline:
            for message in await consumer.getmany(max_messages=5000, max_wait=0.5):
                found[message.topic][contract.trace_id_of(message.headers) or ""] = float(message.timestamp_ms)
    finally:
        await consumer.close()
    return found


def hops(scheduled: dict[str, float], arrived: dict[str, float], writes: list[dict[str, float]]) -> dict[str, Any]:
    """Per hop, the spread of its share of each request's latency (see the module's docstring): `scheduled` and
    `arrived` are wall-clock seconds by traceID, `writes` the write times (ms) of the endpoint, parse and enrich
    records by traceID."""
    names = ("endpoint", "parse", "enrich", "hook")
    shares: dict[str, list[float]] = {name: [] for name in names}
    for trace, at in scheduled.items():
        times = [w.get(trace) for w in writes]
        if trace not in arrived or any(t is None for t in times):
            continue
        points = [at * 1000, *[float(t) for t in times if t is not None], arrived[trace] * 1000]
        for name, (a, b) in zip(names, itertools.pairwise(points), strict=True):
            shares[name].append(b - a)
    return {name: spread(values) for name, values in shares.items()}


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


async def wait_ready(proc: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 180
    while not await asyncio.to_thread(ready, port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"algorun run did not become ready (exit {proc.poll()})")
        await asyncio.sleep(0.1)


async def measure(label: str, kafka: str | None) -> dict[str, Any]:
    from tests.support.procs import free_ports

    receiver = Receiver()
    http, grpc, metrics, receiver.port = free_ports(4)
    await receiver.start()
    with tempfile.TemporaryDirectory(prefix=f"algorun-bench-latency-{label}-") as tmp:
        folder = Path(tmp)
        stages = "".join(STAGE.format(name=n) for n in ("parse", "enrich")).rstrip("\n")
        name = f"l{int(time.time())}{label}"
        text = PIPELINE.replace("NAME", name).replace("STAGES", stages)
        (folder / "pipeline.yaml").write_text(text.replace("HOOK_URL", f"http://127.0.0.1:{receiver.port}/hook"))
        _, topology = load_pipeline([folder / "pipeline.yaml"])
        topics = [next(t.name for t in topology.topics.values() if part in t.name) for part in WRITERS]
        (folder / "stages.py").write_text((HERE / "stages.py").read_text())
        argv = [sys.executable, "-m", "algorun.cli.main", "run", "pipeline.yaml", "--state-dir", str(folder / "state")]
        argv += ["--port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics)]
        if kafka:
            argv += ["--kafka", kafka]
        log = open(folder / "run.log", "wb")  # noqa: ASYNC230, SIM115 (the child writes it; closed below)
        proc = subprocess.Popen(argv, cwd=folder, stdout=log, stderr=subprocess.STDOUT)  # noqa: ASYNC220
        try:
            await wait_ready(proc, http)
            url = f"http://127.0.0.1:{http}/bench/{name}/in"
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as session:
                for _ in range(20):  # warm every hop (the groups' first fetches, connections)
                    await post(session, url)
                top = await maximum(session, url, receiver)
                out: dict[str, Any] = {"max_per_s": round(top)}
                loads = {}
                for load in LOADS:
                    key = f"load_{int(load * 100)}pct"
                    out[key], loads[key] = await open_loop(session, url, receiver, top * load)
            bus = open_bus(
                KafkaSettings(bootstrap_servers=kafka) if kafka else f"local://{folder / 'state' / 'log.db'}"
            )
            try:
                writes = await written_at(bus, topics)
            finally:
                await bus.close()
            wall = time.time() - time.perf_counter()  # perf_counter seconds to wall-clock seconds
            arrived = {t: at + wall for t, at in receiver.arrived.items()}
            for key, scheduled in loads.items():
                at = {t: s + wall for t, s in scheduled.items()}
                out[key]["hops"] = hops(at, arrived, [writes[t] for t in topics])
        except Exception as exc:
            tail = (folder / "run.log").read_text(errors="replace")[-1500:]
            raise RuntimeError(f"{label}: {exc}; algorun run's log ends with:\n{tail}") from exc
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.to_thread(proc.wait, 60)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
            await receiver.stop()
    return out


def main() -> None:
    import uvloop

    result: dict[str, Any] = {"value_bytes": len(VALUE), "hops": "endpoint -> algo -> algo -> hook -> receiver"}
    result["cores"] = os.cpu_count()
    with kafka_bootstrap() as bootstrap:
        result["local"] = uvloop.run(measure("local", None))
        result["kafka"] = uvloop.run(measure("kafka", bootstrap))
    print(json.dumps(result, indent=2))
    report_targets(result["kafka"].get("load_50pct", {}))


def report_targets(half: dict[str, Any]) -> None:
    """The target lines of Kafka at 50% load: end-to-end p50 and p99, and each hop's p99."""
    for name, goal in (("p50", TARGET_P50_MS), ("p99", TARGET_P99_MS)):
        value = half.get(f"{name}_ms")
        measured = "missing" if value is None else value
        report(f"latency.kafka.50pct.{name}_ms", measured, f"<={goal:g}", value is not None and value <= goal)
    for hop, figures in half.get("hops", {}).items():
        value = figures.get("p99_ms")
        measured = "missing" if value is None else value
        met = value is not None and value < TARGET_HOP_P99_MS
        report(f"latency.kafka.50pct.{hop}.p99_ms", measured, f"<{TARGET_HOP_P99_MS:g}", met)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--receiver"]:
        serve_receiver(int(sys.argv[2]))
    else:
        main()
