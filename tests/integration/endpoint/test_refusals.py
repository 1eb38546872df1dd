"""Messages Kafka refuses for good, against the real broker: a 413 rather than a 202 that can never be kept, a
half-open breaker that such a refusal does not wedge, and logged records that such refusals do not block.

librdkafka refuses a record over `message.max.bytes` (1,000,000 by default: value, key, headers and framing) when
it is produced; a body just under the endpoint's 1,000,000-byte limit is over it once the headers are added.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from algorun.api.enums import WalMode
from algorun.endpoint.errors import Code
from algorun.endpoint.service import EndpointService
from algorun.endpoint.settings import WAL_FILE
from algorun.endpoint.wal import WriteAheadLog
from tests.support.endpoint import (
    JSON,
    NAME,
    OWNER,
    create_topic,
    make_config,
    running_endpoint,
    stored_keys,
)
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

NEARLY_1MB = b"[" + b"0," * 499_993 + b"0]"
"""A JSON body of 999,989 bytes: under the endpoint's body limit, over Kafka's with the headers."""


def _topic() -> str:
    return f"endpoint-refusals-{uuid.uuid4().hex[:10]}"


class Client:
    """The endpoint as a user sees it: POST to its path, GET /ready and /metrics."""

    def __init__(self, http: aiohttp.ClientSession, ep: EndpointService) -> None:
        self.http = http
        self.url = f"http://127.0.0.1:{ep.http_port}/{OWNER}/{NAME}/in"
        self.monitoring = f"http://127.0.0.1:{ep.monitoring_port}"

    async def post(self, trace: str, body: bytes = b"{}") -> tuple[int, dict[str, object]]:
        async with self.http.post(f"{self.url}/{trace}", data=body, headers=JSON) as resp:
            return resp.status, await resp.json()

    async def ready(self) -> bool:
        async with self.http.get(f"{self.monitoring}/ready") as resp:
            return resp.status == 200

    async def metric(self, name: str) -> float | None:
        async with self.http.get(f"{self.monitoring}/metrics") as resp:
            text = await resp.text()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name:
                    return sample.value
        return None


def _answer(status: int, body: dict[str, object]) -> tuple[int, object]:
    """The status with what a client reads from the body: `storedIn` of a 202, else the error code."""
    if status == 202:
        return status, body.get("storedIn")
    errors = body.get("errors")
    return status, errors[0].get("errorCode") if isinstance(errors, list) and errors else None


async def test_without_a_log_a_probe_refused_as_too_large_does_not_wedge_the_breaker(bootstrap: str) -> None:
    topic = _topic()
    await create_topic(bootstrap, topic)
    config = make_config(topic, wal_mode=WalMode.DISABLE, cb_fails=1, cb_timeout="1s")  # cb.requests: 3
    async with running_endpoint(config, bootstrap) as ep, aiohttp.ClientSession() as http:
        client = Client(http, ep)
        assert ep.publisher is not None
        ep.publisher.breaker.trip(ep.publisher.clock())  # stands for an outage (test_outage stops a real broker)
        accepted = ["probe"]
        await wait_until(lambda: _accepted(client, "probe"), 10, "the breaker to let a probe through after its timeout")
        status, body = await client.post("too-large", NEARLY_1MB)
        assert _answer(status, body) == (413, Code.TOO_LARGE), body
        for i in range(5):  # with its slot wedged, the third of these got 503 for good
            status, body = await client.post(f"after-{i}")
            assert _answer(status, body) == (202, "broker"), body
            accepted.append(f"after-{i}")
        assert await client.ready()
        assert await client.metric("kafka_cb_current_state") == 0.0
    assert await stored_keys(bootstrap, topic, len(accepted)) == accepted


async def _accepted(client: Client, trace: str) -> bool:
    status, _ = await client.post(trace)
    return status == 202


async def test_the_log_refuses_with_413_a_body_kafka_would_never_take(bootstrap: str, wal_dir: Path) -> None:
    """It used to be answered 202 from the log, then never forwarded (and it tripped the breaker at every try)."""
    topic = _topic()
    await create_topic(bootstrap, topic)
    config = make_config(topic, wal_mode=WalMode.ALWAYS, wal_dir=wal_dir)
    async with running_endpoint(config, bootstrap) as ep, aiohttp.ClientSession() as http:
        client = Client(http, ep)
        status, body = await client.post("too-large", NEARLY_1MB)
        assert _answer(status, body) == (413, Code.TOO_LARGE), body
        assert "message.max.bytes" in str(body)
        status, body = await client.post("small")
        assert _answer(status, body) == (202, "log"), body
        await wait_until(lambda: _log_empty(client), 20, "the log to be forwarded")
    assert await stored_keys(bootstrap, topic, 1) == ["small"]


async def test_logged_records_kafka_refuses_for_good_are_set_aside_and_the_rest_forwarded(
    bootstrap: str, wal_dir: Path
) -> None:
    """Records left in the log (e.g. by an earlier version) for a topic that no longer exists, or too large: they
    used to stay first in the log for good; now they go to its dead-letter table and the others are forwarded."""
    topic = _topic()
    await create_topic(bootstrap, topic)
    await _leave_in_log(
        wal_dir / WAL_FILE,
        [(topic, b"w1", b"{}"), (_topic(), b"gone", b"{}"), (topic, b"big", b"0" * 1_000_100), (topic, b"w2", b"{}")],
    )
    config = make_config(topic, wal_mode=WalMode.ALWAYS, wal_dir=wal_dir)
    async with running_endpoint(config, bootstrap) as ep, aiohttp.ClientSession() as http:
        client = Client(http, ep)
        for trace in ("n1", "n2"):
            status, body = await client.post(trace)
            assert _answer(status, body) == (202, "log"), body
        await wait_until(lambda: _log_empty(client), 20, "the log to be forwarded")
        assert await client.metric("endpoint_wal_dead_letters") == 2
        assert await client.metric("kafka_cb_current_state") == 0.0
        assert await client.ready()
    assert await stored_keys(bootstrap, topic, 4) == ["w1", "w2", "n1", "n2"]


async def _log_empty(client: Client) -> bool:
    return await client.metric("endpoint_wal_messages") == 0


async def _leave_in_log(path: Path, records: list[tuple[str, bytes, bytes]]) -> None:
    """Write `(topic, key, value)` records to the log file at `path`, as an endpoint that accepted them would."""
    wal = WriteAheadLog(path)
    await wal.open()
    now_ms = int(time.time() * 1000)
    for seq, (topic, key, value) in enumerate(records, start=1):
        await wal.append(seq, topic, key, value, [("traceID", key)], now_ms)
    await wal.close()
