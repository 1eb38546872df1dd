"""/ready and shutdown of a whole endpoint (HTTP on 127.0.0.1) over a stand-in bus whose producer the test
controls: readiness must say "not ready" exactly when a request would not be stored or not be forwarded.

The real broker is exercised by tests/integration/endpoint; here the breaker's and the log's states are reached
at will (held probes, a log file that fails).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from algorun.api.configs import EndpointConfig, EndpointPathConfig, Identity
from algorun.api.enums import WalMode
from algorun.api.pipeline import CircuitBreaker, Producer, WriteAheadLog
from algorun.bus.types import Receipt
from algorun.endpoint.service import EndpointService
from algorun.endpoint.settings import build_settings
from algorun.endpoint.wal import WriteAheadLog as LogFile
from tests.support.fakes import OneTopicBus, SwitchedProducer
from tests.support.waiting import wait_until

TOPIC = "t"
JSON = {"Content-Type": "application/json"}


def _config(wal_mode: WalMode, wal_dir: Path | None, requests: int = 1) -> EndpointConfig:
    return EndpointConfig(
        identity=Identity(deployment_owner="acme", deployment_name="orders", pipeline_owner="acme", pipeline_name="p"),
        paths=[EndpointPathConfig(name="in", topic=TOPIC, content_type="application/json")],
        producer=Producer(
            cb=CircuitBreaker(fails=1, timeout="1s", requests=requests),
            wal=WriteAheadLog(mode=wal_mode, path=str(wal_dir) if wal_dir else None),
        ),
    )


class Client:
    """The endpoint as a user sees it: POST a message, GET /ready."""

    def __init__(self, http: aiohttp.ClientSession, service: EndpointService) -> None:
        self.http = http
        self.base = f"http://127.0.0.1:{service.http_port}"

    async def post(self, trace: str) -> tuple[int, str | None]:
        """Status and `storedIn` of one message."""
        async with self.http.post(f"{self.base}/acme/orders/in/{trace}", data=b"{}", headers=JSON) as resp:
            body = await resp.json()
            return resp.status, body.get("storedIn")

    async def not_ready(self) -> dict[str, str]:
        """Why /ready says not ready (empty: it is ready)."""
        async with self.http.get(f"{self.base}/ready") as resp:
            body = await resp.json()
            assert (resp.status == 200) == (not body["notReady"])
            return dict(body["notReady"])

    async def ready(self) -> bool:
        return not await self.not_ready()


@asynccontextmanager
async def _endpoint(
    config: EndpointConfig, producer: SwitchedProducer
) -> AsyncIterator[tuple[EndpointService, Client]]:
    settings = build_settings(
        config,
        {"ALGORUN_ENDPOINT_ACK_TIMEOUT": "2"},
        http_listen="127.0.0.1:0",
        grpc_listen="127.0.0.1:0",
        monitoring_listen="127.0.0.1:0",
    )
    service = EndpointService(config, settings, OneTopicBus(producer, TOPIC))
    await service.start()
    try:
        async with aiohttp.ClientSession() as http:
            client = Client(http, service)
            await wait_until(client.ready, 5, "the endpoint to be ready")
            yield service, client
    finally:
        await service.stop()


async def test_without_a_log_ready_is_false_while_a_half_open_breaker_has_no_free_probe_slot() -> None:
    """Requests get 503 while every probe waits for the broker: /ready must say so (it only checked "open")."""
    producer = SwitchedProducer()
    async with _endpoint(_config(WalMode.DISABLE, None, requests=1), producer) as (_, client):
        producer.up = False
        assert await client.post("a") == (503, None)
        assert "circuit breaker open" in (await client.not_ready())["broker"]
        # Past the breaker's timeout a request would be let through as a probe: ready (an unready pod gets none).
        await wait_until(client.ready, 5, "ready once the breaker would let a probe through")
        producer.up, producer.hold = True, True
        probe = asyncio.ensure_future(client.post("b"))
        await wait_until(lambda: len(producer.held) == 1, 5, "the probe to reach the producer")
        assert "half-open" in (await client.not_ready())["broker"]
        assert await client.post("c") == (503, None)
        producer.held[0].set_result(Receipt(TOPIC, 0, 0))
        assert await probe == (202, "broker")
        assert await client.ready()


async def test_a_failing_log_makes_the_endpoint_unready_and_forwarding_resumes_once_it_works(
    tmp_path: Path,
) -> None:
    """A failed delete (disk full, I/O error) used to end the forwarder for good while requests kept getting 202
    from the log; now it is retried, and /ready says not ready meanwhile."""
    producer = SwitchedProducer()
    async with _endpoint(_config(WalMode.ALWAYS, tmp_path), producer) as (service, client):
        failing = _break_deletes(service)
        assert await client.post("a") == (202, "log")
        await wait_until(lambda: _names_the_log(client), 5, "/ready to report the failing log")
        failing.clear()
        await wait_until(client.ready, 10, "ready again once the log works")
        assert await client.post("b") == (202, "log")
        wal = service.publisher.wal if service.publisher else None
        assert wal is not None
        await wait_until(lambda: wal.count == 0, 10, "the log to be forwarded")
        # At least once: "a" may have been sent twice (its delete failed after the broker had acknowledged it).
        assert {key for _, _, key, _ in producer.sent} == {b"a", b"b"}


async def test_stop_closes_the_log_and_the_producer_even_while_the_log_fails(tmp_path: Path) -> None:
    """A forwarder that had died re-raised its error from close(), and the service never closed the producer."""
    producer = SwitchedProducer()
    async with _endpoint(_config(WalMode.ALWAYS, tmp_path), producer) as (service, client):
        _break_deletes(service)
        assert await client.post("a") == (202, "log")
        await wait_until(lambda: _names_the_log(client), 5, "/ready to report the failing log")
    assert producer.closed
    assert service.publisher is not None and service.publisher.wal is not None
    reopened = LogFile(service.publisher.wal.path)
    await reopened.open()  # the file was closed cleanly and still holds the message
    assert reopened.count >= 1
    await reopened.close()


def _break_deletes(service: EndpointService) -> set[str]:
    """Make the log's deletes fail like a full disk while the returned set is not empty (clear it to heal)."""
    assert service.publisher is not None and service.publisher.wal is not None
    db = service.publisher.wal._db
    assert db is not None
    healthy = db.delete
    failing = {"disk full"}

    def delete(seqs: Sequence[int]) -> None:
        if failing:
            raise sqlite3.OperationalError("database or disk is full")
        healthy(seqs)

    db.delete = delete  # type: ignore[method-assign]
    return failing


async def _names_the_log(client: Client) -> bool:
    return "database or disk is full" in (await client.not_ready()).get("write-ahead log", "")
