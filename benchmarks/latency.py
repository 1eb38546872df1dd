"""End-to-end latency: HTTP request into the endpoint -> python algo -> python algo -> event hook -> webhook
receiver, under open-loop load, on the embedded local log and on the test-bed Kafka in the same run.

The pipeline runs under `algorun run` (its own process); the load generator and the webhook receiver share this
process. First the maximum rate is measured: `BENCH_BURST` requests sent closed-loop with `BENCH_CONNECTIONS`
in flight, divided by the time until the last webhook arrived. Then each load (10%, 50% and 80% of that maximum)
sends requests at fixed times for `BENCH_SECONDS`: a request's latency runs from the time it was scheduled (so
queueing in the generator counts) to the arrival of its webhook, matched by the traceID the endpoint answered
with. Printed per data plane and load: the rate offered, p50/p99/p99.9 in ms, and how many requests did not
arrive within the wait. Targets (issue 26) on Kafka at 50% load: p50 <= 10 ms and p99 <= 25 ms. Per-hop figures
are not measured here.

    .venv/bin/python -m benchmarks.latency          # or: make bench
"""

from __future__ import annotations

import asyncio
import contextlib
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

from benchmarks._broker import kafka_bootstrap
from benchmarks.local import STAGE  # one python-function stage of a benchmark pipeline

HERE = Path(__file__).resolve().parent / "local_pipeline"
BURST = int(os.environ.get("BENCH_BURST", "3000"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "6"))
LOADS = (0.1, 0.5, 0.8)
VALUE = b"v" * 1024
TARGET_P50_MS, TARGET_P99_MS = 10.0, 25.0

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
    """The webhook receiver: the arrival time (perf_counter) of each traceID."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.changed = asyncio.Event()
        self.site: web.TCPSite | None = None
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.arrived.setdefault(request.headers.get("X-Algorun-Trace-Id", ""), time.perf_counter())
        self.changed.set()
        return web.Response(text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        self.site = web.TCPSite(self.runner, "127.0.0.1", self.port)
        await self.site.start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


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


async def open_loop(session: aiohttp.ClientSession, url: str, receiver: Receiver, rate: float) -> dict[str, Any]:
    """Requests sent at fixed times, `rate` per second, for SECONDS; latency from each one's scheduled time."""
    count = max(1, int(rate * SECONDS))
    scheduled: dict[str, float] = {}
    start = time.perf_counter() + 0.1

    async def one(at: float) -> None:
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        scheduled[await post(session, url)] = at

    await asyncio.gather(*(one(start + i / rate) for i in range(count)))
    traces = list(scheduled)
    await wait_arrivals(receiver, traces, 30)
    latencies = [(receiver.arrived[t] - at) * 1000 for t, at in scheduled.items() if t in receiver.arrived]
    if not latencies:
        return {"offered_per_s": round(rate), "requests": count, "missing": count}
    return {
        "offered_per_s": round(rate),
        "requests": count,
        "missing": count - len(latencies),
        "p50_ms": round(percentile(latencies, 0.5), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
        "p999_ms": round(percentile(latencies, 0.999), 1),
    }


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
                for load in LOADS:
                    out[f"load_{int(load * 100)}pct"] = await open_loop(session, url, receiver, top * load)
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
    half = result["kafka"].get("load_50pct", {})
    if "p50_ms" in half:
        result["targets"] = {
            f"kafka_50pct_p50<={TARGET_P50_MS:g}ms": half["p50_ms"] <= TARGET_P50_MS,
            f"kafka_50pct_p99<={TARGET_P99_MS:g}ms": half["p99_ms"] <= TARGET_P99_MS,
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
