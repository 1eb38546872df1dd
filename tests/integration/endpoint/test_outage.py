"""Broker outages: a 202 is never returned for a message that is not in Kafka or the write-ahead log, and the
log delivers everything, in order, with its headers, even across a SIGKILL of the endpoint.

These tests stop and restart a private broker (`restartable`), never the shared session one.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from pathlib import Path

import aiohttp
import pytest

from algorun.api.enums import WalMode
from tests.support.endpoint import (
    JSON,
    NAME,
    OWNER,
    create_topic,
    endpoint_process,
    header,
    healthy,
    make_config,
    read_topic,
    running_endpoint,
    stored_keys,
)
from tests.support.procs import free_ports
from tests.support.restartable_broker import RestartableBroker
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def _topic() -> str:
    return f"endpoint-outage-{uuid.uuid4().hex[:10]}"


async def test_without_a_log_a_stopped_broker_means_503_and_every_202_is_in_kafka(
    restartable: RestartableBroker,
) -> None:
    topic = _topic()
    await create_topic(restartable.bootstrap, topic)
    results: list[tuple[int, str, str | None]] = []  # (status, traceID sent, Retry-After)
    stop = asyncio.Event()
    config = make_config(topic, wal_mode=WalMode.DISABLE, cb_fails=1, cb_timeout="1s")
    async with running_endpoint(config, restartable.bootstrap) as ep, aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{ep.http_port}/{OWNER}/{NAME}/in"

        async def client(n: int) -> None:
            i = 0
            while not stop.is_set():
                trace = f"c{n}-{i}"
                i += 1
                resp = await http.post(f"{url}/{trace}", data=b"{}", headers=JSON)
                body = await resp.json()
                assert resp.status in (202, 503), body
                results.append((resp.status, trace, resp.headers.get("Retry-After")))

        clients = [asyncio.ensure_future(client(n)) for n in range(4)]
        await wait_until(lambda: sum(s == 202 for s, _, _ in results) >= 20, 20, "202s with the broker up")
        restartable.stop()
        stopped_at = len(results)
        await wait_until(lambda: sum(s == 503 for s, _, _ in results[stopped_at:]) >= 10, 30, "503s while it is down")
        restartable.start()
        restarted_at = len(results)
        await wait_until(lambda: any(s == 202 for s, _, _ in results[restarted_at:]), 60, "202s after the restart")
        stop.set()
        await asyncio.gather(*clients)
    accepted = {trace for status, trace, _ in results if status == 202}
    refused = [(trace, retry) for status, trace, retry in results if status == 503]
    assert refused, "the outage produced no 503"
    assert all(retry and int(retry) >= 1 for _, retry in refused), "503 without Retry-After"
    stored = set(await stored_keys(restartable.bootstrap, topic, len(accepted), limit=30))
    assert accepted - stored == set(), f"{len(accepted - stored)} messages answered 202 are not in Kafka"


async def test_with_the_log_requests_keep_succeeding_and_arrive_in_order_with_headers(
    restartable: RestartableBroker, wal_dir: Path
) -> None:
    topic = _topic()
    await create_topic(restartable.bootstrap, topic)
    config = make_config(topic, wal_mode=WalMode.FALLBACK, wal_dir=wal_dir)
    stored_in: list[str] = []
    async with running_endpoint(config, restartable.bootstrap) as ep, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{ep.http_port}/{OWNER}/{NAME}/in"

        async def send(i: int) -> None:
            # Odd messages are staged parts: their `run=false` must survive the log.
            url = f"{base}/tr-{i}/upload" if i % 2 else f"{base}/tr-{i}"
            resp = await http.post(f"{url}?i={i}", data=json.dumps({"i": i}).encode(), headers=JSON)
            assert resp.status == 202, await resp.text()
            stored_in.append((await resp.json())["storedIn"])

        for i in range(5):
            await send(i)
        restartable.stop()
        for i in range(5, 20):
            await send(i)
        assert stored_in[5:].count("log") >= 14, stored_in
        restartable.start()
        for i in range(20, 25):
            await send(i)
        await wait_until(lambda: ep.publisher is not None and not ep.publisher.diverting, 60, "the log to drain")
    msgs = await read_topic(restartable.bootstrap, topic, 25, limit=30)
    first_seen: list[int] = []
    for m in msgs:
        i = json.loads(m.value)["i"]
        assert m.key == f"tr-{i}".encode()
        assert header(m, "traceID") == f"tr-{i}"
        assert header(m, "run") == ("false" if i % 2 else "true")
        assert header(m, "contentType") == "application/json"
        assert header(m, "endpointParams") == f"i={i}"
        if i not in first_seen:
            first_seen.append(i)
    assert first_seen == list(range(25)), "lost or reordered"


async def test_endpoint_killed_with_sigkill_during_an_outage_loses_nothing(
    restartable: RestartableBroker, tmp_path: Path
) -> None:
    topic = _topic()
    await create_topic(restartable.bootstrap, topic)
    config_file = tmp_path / "endpoint-config.json"
    config = make_config(topic, wal_mode=WalMode.ALWAYS, wal_dir=tmp_path / "wal")
    config_file.write_text(json.dumps(config.to_json()))
    port, mon = free_ports(2)
    proc = endpoint_process(config_file, restartable.bootstrap, port, mon, tmp_path / "endpoint-1.log")
    try:
        async with aiohttp.ClientSession() as http:
            await wait_until(lambda: healthy(http, port), 30, f"the endpoint to start ({proc.tail()})")
            restartable.stop()
            for i in range(20):
                resp = await http.post(
                    f"http://127.0.0.1:{port}/{OWNER}/{NAME}/in/k-{i}", data=json.dumps({"i": i}).encode(), headers=JSON
                )
                assert resp.status == 202, await resp.text()
                assert (await resp.json())["storedIn"] == "log"
        os.kill(proc.pid, signal.SIGKILL)
        proc.popen.wait(10)
    finally:
        proc.stop()
    restartable.start()
    again = endpoint_process(config_file, restartable.bootstrap, port, mon, tmp_path / "endpoint-2.log")
    try:
        msgs = await read_topic(restartable.bootstrap, topic, 20, limit=60)
    finally:
        again.stop()
    seen: list[int] = []
    for m in msgs:
        i = json.loads(m.value)["i"]
        assert header(m, "traceID") == f"k-{i}"
        if i not in seen:
            seen.append(i)
    assert seen == list(range(20)), f"after SIGKILL and restart: {seen}"
