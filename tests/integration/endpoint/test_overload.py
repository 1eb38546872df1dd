"""Overload: beyond its in-flight limit the endpoint answers 429 with Retry-After, and every 202 is in Kafka."""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
import pytest

from tests.support.endpoint import NAME, OWNER, create_topic, make_config, running_endpoint, stored_keys

pytestmark = pytest.mark.integration


async def test_a_load_beyond_capacity_gets_429_and_every_202_is_in_kafka(bootstrap: str) -> None:
    topic = f"endpoint-load-{uuid.uuid4().hex[:10]}"
    await create_topic(bootstrap, topic, partitions=2)
    results: list[tuple[int, str, str | None]] = []
    env = {"ALGORUN_ENDPOINT_MAX_IN_FLIGHT": "16"}
    async with running_endpoint(make_config(topic, partitions=2), bootstrap, env) as ep:
        url = f"http://127.0.0.1:{ep.http_port}/{OWNER}/{NAME}/in"
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as http:

            async def client(n: int) -> None:
                for i in range(40):
                    trace = f"l{n}-{i}"
                    async with http.post(
                        f"{url}/{trace}", data=b"{}", headers={"Content-Type": "application/json"}
                    ) as r:
                        await r.read()
                        results.append((r.status, trace, r.headers.get("Retry-After")))

            await asyncio.gather(*(client(n) for n in range(128)))
    statuses = {s for s, _, _ in results}
    assert statuses <= {202, 429}, statuses
    too_many = [retry for s, _, retry in results if s == 429]
    assert too_many, "no 429 at 128 concurrent clients with an in-flight limit of 16"
    assert all(retry == "1" for retry in too_many)
    accepted = {t for s, t, _ in results if s == 202}
    assert accepted, "nothing accepted"
    stored = set(await stored_keys(bootstrap, topic, len(accepted)))
    assert accepted <= stored
