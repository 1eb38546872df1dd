"""The http executor against small aiohttp algos started by each test: at most `concurrency` requests at once,
over kept-alive connections; `Https` verified against the configured CA, and a wrong CA reported as the reason
the runner is not ready (nothing consumed) instead of failing every message."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from algorun.api.configs import RunnerConfig
from algorun.bus import Bus, contract
from algorun.runner.executors import create
from algorun.runner.model import AlgoFailure, AlgoUnavailable, Part, Request
from tests.support.certs import CertificateAuthority
from tests.support.procs import free_port
from tests.support.runner_configs import names, runner_config
from tests.support.runner_harness import collect, create_topics, header, options, running, send
from tests.support.waiting import wait_until

Handler = Callable[[web.Request], Awaitable[web.Response]]


@asynccontextmanager
async def serving(handler: Handler, port: int, tls: ssl.SSLContext | None = None) -> AsyncIterator[None]:
    app = web.Application()
    app.router.add_post("/run", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=tls).start()
    try:
        yield
    finally:
        await runner.cleanup()


def http_config(n: dict[str, str], port: int, *, secure: bool = False, ca_file: Path | None = None) -> RunnerConfig:
    http: dict[str, Any] = {"verb": "POST", "port": port, "path": "/run"}
    if ca_file is not None:
        http["caFile"] = str(ca_file)
    return runner_config(
        n,
        executor="http",
        entrypoint=None,
        input_type="Https" if secure else "Http",
        input_extra={"http": http},
        outputs=[{"name": "out", "outputDeliveryType": "HttpResponse", "topic": n["output"]}],
    )


async def upper(request: web.Request) -> web.Response:
    return web.Response(body=(await request.read()).upper(), content_type="text/plain")


async def test_requests_run_concurrently_up_to_the_limit_over_kept_alive_connections(local_bus: Bus) -> None:
    """60 messages with key concurrency (a lane each) and `concurrency` 4 against an algo that takes 20 ms: the
    algo sees several requests at once but never more than 4, over no more than 4 connections."""
    port = free_port()
    now, most, peers = 0, 0, set()

    async def slow(request: web.Request) -> web.Response:
        nonlocal now, most
        now += 1
        most = max(most, now)
        peers.add(request.transport.get_extra_info("peername")[1] if request.transport else None)
        try:
            await asyncio.sleep(0.02)  # the algo's work, so that requests overlap
            return await upper(request)
        finally:
            now -= 1

    n = names()
    config = http_config(n, port)
    await create_topics(local_bus, config)
    async with serving(slow, port), running(config, local_bus, options(concurrency=4, key_concurrency=True)):
        await send(local_bus, n["input"], [f"m{i}".encode() for i in range(60)])
        out = await collect(local_bus, n["output"], 60)
    assert sorted(m.value for m in out) == sorted(f"M{i}".encode() for i in range(60))
    assert 2 <= most <= 4
    assert 1 <= len(peers) <= 4  # 60 requests, each connection reused


async def test_https_verifies_the_algo_against_the_configured_ca(local_bus: Bus, tmp_path: Path) -> None:
    ca = CertificateAuthority("algo test CA")
    issued = ca.issue("localhost", ip_addresses=("127.0.0.1",), server=True)
    cert, key = issued.write(tmp_path, "algo")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    port = free_port()
    n = names()
    config = http_config(n, port, secure=True, ca_file=ca.write_ca(tmp_path / "ca.crt"))
    await create_topics(local_bus, config)
    async with serving(upper, port, tls), running(config, local_bus):
        await send(local_bus, n["input"], [b"over tls"])
        [out] = await collect(local_bus, n["output"], 1)
    assert out.value == b"OVER TLS"


async def test_https_with_a_wrong_ca_is_not_ready_and_consumes_nothing(local_bus: Bus, tmp_path: Path) -> None:
    issued = CertificateAuthority("the algo's CA").issue("localhost", ip_addresses=("127.0.0.1",), server=True)
    cert, key = issued.write(tmp_path, "algo")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    port = free_port()
    n = names()
    other = CertificateAuthority("another CA").write_ca(tmp_path / "other-ca.crt")
    config = http_config(n, port, secure=True, ca_file=other)
    await create_topics(local_bus, config)
    await send(local_bus, n["input"], [b"a", b"b"])
    async with serving(upper, port, tls), running(config, local_bus) as r:
        await wait_until(
            lambda: "CERTIFICATE_VERIFY_FAILED" in r.readiness.reasons().get("algo", ""),
            10,
            "the runner to give the TLS failure as the reason it is not ready",
        )
        assert r.readiness.reasons()["consumer"] == "not consuming yet (waiting for the algo)"
        lag = await local_bus.lag(n["group"], [n["input"]])
        assert sum(x.lag for x in lag.values()) == 2  # nothing consumed, nothing dead-lettered


def _request(config: RunnerConfig, data: bytes) -> Request:
    trace = "cd" * 16
    return Request(
        trace_id=trace,
        input=config.inputs[0],
        parts=[Part(data, "text/plain", "in.txt")],
        parameters=config.parameters,
        endpoint_params=None,
        headers={"traceID": trace},
    )


Reply = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _run_while_the_algo_ends(reply: Reply) -> None:
    """Run one message against an algo server whose process ends while it serves the request: `reply` does what
    it does before that; then the listener goes and the connection is cut, as when a stopping container's process
    ends. The run must raise AlgoUnavailable (wait and rerun), never AlgoFailure (dead-letter)."""
    port = free_port()
    config = http_config(names(), port)
    server: asyncio.Server | None = None

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reply(reader, writer)
        assert server is not None
        server.close()
        writer.transport.abort()

    server = await asyncio.start_server(serve, "127.0.0.1", port)
    executor = create(config, options())
    await executor.start()
    try:
        with pytest.raises(AlgoUnavailable, match="not reachable"):
            await asyncio.wait_for(executor.run(_request(config, b"x")), 10)
    finally:
        server.close()
        await executor.close()


async def test_an_algo_that_goes_away_mid_request_is_unavailable_not_failed() -> None:
    """The algo stops (its container stopping, its pod deleted) while a request is in flight: the run waits and
    reruns, so the message is read again rather than dead-lettered for the algo's restart."""

    async def read_the_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")  # the request's head: it is in flight

    await _run_while_the_algo_ends(read_the_head)


async def test_an_algo_that_goes_away_mid_answer_is_unavailable_not_failed() -> None:
    """The algo's process ends between the head of its answer and the body (a stopping container is killed at any
    byte): the answer is cut short, which is the algo going away, not its verdict on the message. The run waits and
    reruns; dead-lettering it lost the message for a pod deleted mid-stream (tests/e2e/test_faults.py)."""

    async def answer_in_part(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        sizes = [line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")]
        await reader.readexactly(int(sizes[0]))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nABC")
        await writer.drain()

    await _run_while_the_algo_ends(answer_in_part)


async def test_an_algo_that_drops_a_message_three_times_while_staying_up_failed_it(local_bus: Bus) -> None:
    """The algo closes the connection of every request for one message and keeps serving. One break may be its
    process ending (it accepts connections a moment longer), so the run is repeated; the third break while it
    stays reachable is its answer to the message: dead-lettered, with the error, after exactly three runs."""
    port = free_port()
    n = names()
    config = http_config(n, port)
    seen: list[bytes] = []

    async def drop_poison(request: web.Request) -> web.Response:
        body = await request.read()
        if body == b"poison":
            seen.append(body)
            assert request.transport is not None
            request.transport.close()
            await asyncio.sleep(1)
        return web.Response(body=body.upper(), content_type="text/plain")

    executor = create(config, options())
    await executor.start()
    try:
        async with serving(drop_poison, port):
            with pytest.raises(AlgoUnavailable) as raised:
                await asyncio.wait_for(executor.run(_request(config, b"poison")), 10)
            assert isinstance(raised.value.broke, AlgoFailure)
    finally:
        await executor.close()
    seen.clear()

    await create_topics(local_bus, config)
    async with serving(drop_poison, port), running(config, local_bus):
        await send(local_bus, n["input"], [b"poison", b"fine"])
        (letter,) = await collect(local_bus, config.retry.dead_letter_topic, 1)
        (out,) = await collect(local_bus, n["output"], 1)
    assert out.value == b"FINE"
    assert len(seen) == 3
    assert "in 3 runs while the algo stayed reachable" in (header(letter, contract.ERROR_MESSAGE) or "")
