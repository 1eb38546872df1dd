"""The pod's one /ready and /metrics over its workers' own endpoints (real HTTP servers on loopback ports)."""

from __future__ import annotations

import aiohttp
from prometheus_client import CollectorRegistry, Counter

from algorun.runner.pod_endpoint import PodEndpoint
from algorun.telemetry import HealthServer, Readiness


def _worker(messages: int, reason: list[str | None]) -> HealthServer:
    registry = CollectorRegistry()
    Counter("algorunner_messages", "Consumed messages", registry=registry).inc(messages)
    readiness = Readiness()
    readiness.add("consumer", lambda: reason[0])
    return HealthServer(0, readiness, registry, host="127.0.0.1")


async def test_the_pod_is_ready_only_when_every_worker_is_and_counts_them_all() -> None:
    reasons: list[list[str | None]] = [[None], ["not consuming yet (waiting for the algo)"]]
    workers = [_worker(3, reasons[0]), _worker(4, reasons[1])]
    for w in workers:
        await w.start()
    ports: list[int | None] = [w.port for w in workers]
    pod = PodEndpoint(lambda: ports, 2)
    await pod.start("127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as http:

            async def get(path: str) -> tuple[int, str]:
                async with http.get(f"http://127.0.0.1:{pod.port}{path}") as r:
                    return r.status, await r.text()

            status, body = await get("/ready")
            assert status == 503 and "worker 1" in body and "waiting for the algo" in body and "worker 0" not in body
            reasons[1][0] = "no partitions assigned"  # a standby member: more workers than partitions
            assert (await get("/ready"))[0] == 200
            reasons[0][0] = "no partitions assigned"
            status, body = await get("/ready")
            assert status == 503 and "no partitions assigned to any worker" in body
            reasons[0][0] = reasons[1][0] = None
            assert (await get("/ready"))[0] == 200
            status, text = await get("/metrics")
            assert status == 200 and "algorunner_messages_total 7.0" in text
            await workers[1].stop()
            assert (await get("/ready"))[0] == 503
            assert (await get("/metrics"))[0] == 503, "a sum without a worker would look like counters going back"
            ports[1] = None
            status, body = await get("/ready")
            assert status == 503 and "not listening yet" in body
    finally:
        await pod.stop()
        for w in workers:
            await w.stop()
