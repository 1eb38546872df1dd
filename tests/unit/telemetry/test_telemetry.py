from __future__ import annotations

import json
import logging

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, Counter

from algorun.telemetry import HealthServer, Readiness, configure_logging, trace_context


def test_json_logs_carry_trace_id_and_extras(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("runner", instance="pod-1")
    with trace_context("abc123"):
        logging.getLogger("x").info("processed %d", 3, extra={"topic": "t"})
    logging.getLogger("x").warning("outside")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert lines[0]["msg"] == "processed 3" and lines[0]["traceID"] == "abc123" and lines[0]["topic"] == "t"
    assert lines[0]["component"] == "runner" and lines[0]["instance"] == "pod-1"
    assert "traceID" not in lines[1] and lines[1]["level"] == "warning"


async def test_health_ready_and_metrics() -> None:
    registry = CollectorRegistry()
    Counter("algorunner_test_total", "a test counter", registry=registry).inc()
    state = {"algo": "connection refused"}
    readiness = Readiness()
    readiness.add("algo", lambda: state["algo"])
    server = HealthServer(0, readiness, registry, host="127.0.0.1")
    await server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/health") as r:
                assert r.status == 200
            async with session.get(f"{base}/ready") as r:
                assert r.status == 503 and (await r.json())["notReady"] == {"algo": "connection refused"}
            state["algo"] = None  # type: ignore[assignment]
            async with session.get(f"{base}/ready") as r:
                assert r.status == 200
            async with session.get(f"{base}/metrics") as r:
                assert "algorunner_test_total 1.0" in await r.text()
    finally:
        await server.stop()
