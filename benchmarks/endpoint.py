"""Ingestion endpoint speed: 1 KB POSTs acknowledged by Kafka versus an aiohttp hello-world on the same core.

Prints one JSON object:
- `http.max`: requests/s at saturation (closed loop, `BENCH_CONNECTIONS` keep-alive connections) for the
  endpoint (each 202 sent after the broker acknowledged the message) and for an aiohttp + uvloop server that
  reads the body and answers 202 with a small JSON body, and the ratio endpoint/hello (target >= 0.7);
- `http.latency_at_half_max`: p50/p99 in ms of the endpoint under an open-loop load at 50% of its measured
  maximum (latency counted from the scheduled send time, so queueing is included);
- `grpc_stream`: messages/s through `PipelineEndpoint/Run` streams, each acknowledged after the broker.
Both servers are pinned to CPU 0 (`sched_setaffinity`), the load generator to the last CPU; the test-bed
broker (started here unless BENCH_KAFKA=host:port is set) floats. On a 2-core machine shared with other
work the figures are noisy: rounds are interleaved and the best is kept.

With each closed-loop figure comes the server's CPU use over the round (all its threads, from
/proc/PID/task/*/schedstat): `cpu_cores` near 1.0 means the server was CPU-bound on its core, and
`cpu_us_per_req` is what a request cost it. Below 1.0 the server was waiting (for the broker's acknowledgements,
or for the load generator), so the ratio then measures latency, not cost: that is how the endpoint's linger
was found to bound it (see algorun.endpoint.service.ENDPOINT_PRODUCER_DEFAULTS).

    .venv/bin/python benchmarks/endpoint.py            # or: make bench
"""

from __future__ import annotations

import os
import sys

# Run as `python benchmarks/endpoint.py`: the script's directory is first on sys.path, and its benchmarks/operator.py
# would shadow the standard library's `operator` (pathlib and asyncio import it). Import from the repository root
# instead; only modules already loaded at startup (os, sys) may be used before this line.
sys.path[:1] = [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]

import asyncio  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import grpc  # noqa: E402
import uvloop  # noqa: E402

from algorun.api.configs import EndpointConfig, EndpointPathConfig, Identity  # noqa: E402
from algorun.bus import TopicSpec, open_bus  # noqa: E402
from algorun.endpoint.pb import pipeline_endpoint_pb2 as pb  # noqa: E402
from benchmarks._broker import kafka_bootstrap  # noqa: E402
from benchmarks._targets import report  # noqa: E402
from tests.support.procs import free_ports  # noqa: E402

SECONDS = float(os.environ.get("BENCH_SECONDS", "8"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "256"))
RATIO_TARGET = 0.7
"""The endpoint's requests/s at saturation over a hello-world aiohttp server's, on the same core."""
GRPC_MESSAGES = int(os.environ.get("BENCH_GRPC_MESSAGES", "50000"))
GRPC_STREAMS = int(os.environ.get("BENCH_GRPC_STREAMS", "4"))
BODY = os.urandom(1024)
OWNER, NAME = "bench", "endpoint"
SERVER_CPU = 0
CLIENT_CPU = (os.cpu_count() or 1) - 1

HELLO = """
import sys, uvloop
from aiohttp import web
async def handle(request):
    await request.read()
    return web.json_response({"traceID": "x", "topic": "t", "partition": 0, "offset": 0}, status=202)
app = web.Application()
app.router.add_post("/{tail:.*}", handle)
uvloop.install()
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


def _pinned() -> None:
    os.sched_setaffinity(0, {SERVER_CPU})


def start_hello(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", HELLO, str(port)], preexec_fn=_pinned)


def start_endpoint(bootstrap: str, topic: str, ports: list[int], workdir: Path) -> subprocess.Popen[bytes]:
    ident = Identity(deployment_owner=OWNER, deployment_name=NAME, pipeline_owner=OWNER, pipeline_name=NAME)
    config = EndpointConfig(identity=ident, paths=[EndpointPathConfig(name="in", topic=topic)])
    path = workdir / "endpoint-config.json"
    path.write_text(json.dumps(config.to_json()))
    argv = [sys.executable, "-m", "algorun.cli.main", "endpoint", "--config", str(path), "--log-level", "warning"]
    argv += ["--bus", f"kafka://{bootstrap}", "--http-listen", f"127.0.0.1:{ports[0]}"]
    argv += ["--grpc-listen", f"127.0.0.1:{ports[1]}", "--monitoring-listen", f"127.0.0.1:{ports[2]}"]
    return subprocess.Popen(argv, preexec_fn=_pinned, stdout=subprocess.DEVNULL)


# ---- a small HTTP/1.1 keep-alive client: aiohttp's client would be the bottleneck, not the servers ----


class Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.transport: Any = None  # uvloop's transports are not asyncio.Transport subclasses

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        length = 0
        for line in bytes(self.buf[:end]).split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(self.buf) < end + 4 + length:
            return
        status = int(self.buf[9:12])
        del self.buf[: end + 4 + length]
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("closed"))

    async def request(self, raw: bytes) -> int:
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.waiter


def post(port: int, path: str) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Length: {len(BODY)}\r\n\r\n"
    )
    return head.encode() + BODY


async def connect(port: int, n: int) -> list[Connection]:
    loop = asyncio.get_running_loop()
    out = []
    for _ in range(n):
        _, proto = await loop.create_connection(Connection, "127.0.0.1", port)
        out.append(proto)
    return out


async def wait_http(port: int, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while True:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n")
            line = await reader.readline()
            writer.close()
            if b" 200 " in line or b" 404 " in line or b" 405 " in line:  # hello has no /ready
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"server on port {port} did not become ready")
        await asyncio.sleep(0.2)


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of `pid` so far (the endpoint's librdkafka threads share its core)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError, ValueError, IndexError):  # a thread that ended meanwhile
            total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
    return total / 1e9


class CpuUse:
    """The CPU a server used during a measured window (`cores`) and per request (`us_per_req`)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.cores = 0.0
        self.us_per_req = 0.0
        self._cpu = 0.0
        self._at = 0.0

    def start(self) -> None:
        self._cpu, self._at = cpu_seconds(self.pid), time.perf_counter()

    def stop(self, requests: int) -> None:
        cpu, elapsed = cpu_seconds(self.pid) - self._cpu, time.perf_counter() - self._at
        self.cores = cpu / elapsed
        self.us_per_req = cpu / max(1, requests) * 1e6


async def closed_loop(port: int, path: str, seconds: float, cpu: CpuUse | None = None) -> tuple[float, dict[int, int]]:
    """Requests/s with CONNECTIONS busy connections for `seconds` (after a 1 s warm-up)."""
    conns = await connect(port, CONNECTIONS)
    raw = post(port, path)
    statuses: dict[int, int] = {}
    counting = False
    done = 0
    stop = False

    async def worker(c: Connection) -> None:
        nonlocal done
        while not stop:
            status = await c.request(raw)
            if counting:
                done += 1
                statuses[status] = statuses.get(status, 0) + 1

    tasks = [asyncio.ensure_future(worker(c)) for c in conns]
    await asyncio.sleep(1.0)
    counting = True
    if cpu is not None:
        cpu.start()
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    counting = False
    elapsed = time.perf_counter() - started
    if cpu is not None:
        cpu.stop(done)
    stop = True
    await asyncio.gather(*tasks)
    for c in conns:
        c.transport.close()
    return done / elapsed, statuses


async def open_loop(port: int, path: str, rate: float, seconds: float) -> dict[str, float]:
    """Send at `rate` per second regardless of answers; latency from each request's scheduled time."""
    conns = await connect(port, 512)
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for c in conns:
        idle.put_nowait(c)
    raw = post(port, path)
    latencies: list[float] = []
    errors = 0

    async def one(scheduled: float) -> None:
        nonlocal errors
        c = await idle.get()
        status = await c.request(raw)
        latencies.append(time.perf_counter() - scheduled)
        if status != 202:
            errors += 1
        idle.put_nowait(c)

    tasks = []
    start = time.perf_counter()
    sent = 0
    while (now := time.perf_counter()) - start < seconds:
        due = int((now - start) * rate)
        while sent < due:
            tasks.append(asyncio.ensure_future(one(start + sent / rate)))
            sent += 1
        await asyncio.sleep(0.0005)
    await asyncio.gather(*tasks)
    for c in conns:
        c.transport.close()
    latencies.sort()
    return {
        "rate_per_s": round(rate),
        "sent": sent,
        "non_202": errors,
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
    }


async def grpc_stream(port: int) -> float:
    per_stream = GRPC_MESSAGES // GRPC_STREAMS
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        run = channel.stream_stream("/PipelineEndpoint/Run", pb.RunRequest.SerializeToString, pb.RunResponse.FromString)

        async def requests(n: int) -> Any:
            for i in range(n):
                yield pb.RunRequest(
                    deploymentOwner=OWNER, deploymentName=NAME, endpointPath="in", message=BODY, streamOffset=i
                )

        async def one() -> int:
            count = 0
            async for _ in run(requests(per_stream)):
                count += 1
            return count

        started = time.perf_counter()
        counts = await asyncio.gather(*(one() for _ in range(GRPC_STREAMS)))
        elapsed = time.perf_counter() - started
    assert sum(counts) == per_stream * GRPC_STREAMS, counts
    return sum(counts) / elapsed


async def suite(bootstrap: str, workdir: Path) -> dict[str, Any]:
    topic = f"bench-endpoint-{uuid.uuid4().hex[:8]}"
    bus = open_bus(f"kafka://{bootstrap}")
    await bus.create_topics([TopicSpec(topic, 4)])
    await bus.close()
    hello_port, *ep_ports = free_ports(4)
    hello = start_hello(hello_port)
    endpoint = start_endpoint(bootstrap, topic, ep_ports, workdir)
    ingest = f"/{OWNER}/{NAME}/in"
    try:
        await wait_http(hello_port)
        await wait_http(ep_ports[0])
        best_hello = best_ep = 0.0
        ep_statuses: dict[int, int] = {}
        hello_cpu, ep_cpu = CpuUse(hello.pid), CpuUse(endpoint.pid)
        best_hello_cpu = best_ep_cpu = (0.0, 0.0)
        for _ in range(ROUNDS):
            rate, _ = await closed_loop(hello_port, ingest, SECONDS, hello_cpu)
            if rate > best_hello:
                best_hello, best_hello_cpu = rate, (hello_cpu.cores, hello_cpu.us_per_req)
            rate, statuses = await closed_loop(ep_ports[0], ingest, SECONDS, ep_cpu)
            if rate > best_ep:
                best_ep, ep_statuses, best_ep_cpu = rate, statuses, (ep_cpu.cores, ep_cpu.us_per_req)
        latency = await open_loop(ep_ports[0], ingest, best_ep / 2, SECONDS)
        grpc_rate = max([await grpc_stream(ep_ports[1]) for _ in range(ROUNDS)])
    finally:
        for proc in (hello, endpoint):
            proc.terminate()
            proc.wait(30)
    return {
        "http": {
            "max": {
                "hello_req_per_s": round(best_hello),
                "endpoint_req_per_s": round(best_ep),
                "endpoint_statuses": ep_statuses,
                "ratio": round(best_ep / best_hello, 3),
                "hello_cpu_cores": round(best_hello_cpu[0], 2),
                "hello_cpu_us_per_req": round(best_hello_cpu[1], 1),
                "endpoint_cpu_cores": round(best_ep_cpu[0], 2),
                "endpoint_cpu_us_per_req": round(best_ep_cpu[1], 1),
            },
            "latency_at_half_max": latency,
        },
        "grpc_stream": {"streams": GRPC_STREAMS, "msgs_per_s": round(grpc_rate)},
    }


def main() -> None:
    result: dict[str, Any] = {
        "body_bytes": len(BODY),
        "seconds": SECONDS,
        "rounds": ROUNDS,
        "connections": CONNECTIONS,
        "cores": os.cpu_count(),
        "server_cpu": SERVER_CPU,
        "client_cpu": CLIENT_CPU,
    }
    with tempfile.TemporaryDirectory(prefix="algorun-bench-endpoint-") as d, kafka_bootstrap(Path(d)) as bootstrap:
        os.sched_setaffinity(0, {CLIENT_CPU})  # after the broker started: it keeps every CPU
        result.update(uvloop.run(suite(bootstrap, Path(d))))
    print(json.dumps(result, indent=2))
    ratio = result["http"]["max"]["ratio"]
    report("endpoint.http_max_over_hello", ratio, f">={RATIO_TARGET:g}", ratio >= RATIO_TARGET)


if __name__ == "__main__":
    main()
