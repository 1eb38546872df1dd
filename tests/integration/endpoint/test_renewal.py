"""SIGHUP renews the endpoint's producer (the original's producer swap): the new client reads the certificate
files again, so rotated credentials take effect without a restart, and nothing accepted is lost or reordered."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from algorun.api.enums import WalMode
from algorun.bus import BusClosed
from tests.support.bus_settings import settings_for
from tests.support.endpoint import (
    JSON,
    NAME,
    OWNER,
    create_topic,
    endpoint_process,
    healthy,
    make_config,
    running_endpoint,
    stored_keys,
)
from tests.support.procs import free_ports
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def _post(http: aiohttp.ClientSession, port: int, trace: str) -> int:
    async with http.post(f"http://127.0.0.1:{port}/{OWNER}/{NAME}/in/{trace}", data=b"{}", headers=JSON) as resp:
        return resp.status


async def test_a_renewed_producer_reads_rotated_certificates_and_keeps_the_old_one_when_it_cannot(
    kafka: Any, tmp_path: Path
) -> None:
    topic = f"endpoint-renew-{uuid.uuid4().hex[:10]}"
    await create_topic(kafka.bootstrap(), topic)
    cert, key = tmp_path / "client.crt", tmp_path / "client.key"

    def install(cert_from: Path, key_from: Path) -> None:
        shutil.copyfile(cert_from, cert)
        shutil.copyfile(key_from, key)

    install(kafka.client_cert, kafka.client_key)
    config = make_config(topic, wal_mode=WalMode.DISABLE, cb_fails=1000)  # the breaker stays out of the way
    tls = settings_for(kafka, "SSL", cert_location=str(cert), key_location=str(key))
    accepted: list[str] = []
    endpoint = running_endpoint(config, tls, {"ALGORUN_ENDPOINT_ACK_TIMEOUT": "3"})
    async with endpoint as service, aiohttp.ClientSession() as http:
        port = service.http_port
        assert await _post(http, port, "t-0") == 202
        accepted.append("t-0")
        # A certificate the broker does not trust replaces the files: the running client has what it read.
        install(kafka.untrusted_client_cert, kafka.untrusted_client_key)
        assert await _post(http, port, "t-1") == 202
        accepted.append("t-1")
        assert await service.renew_producer()
        assert await _post(http, port, "t-2") == 503, "the renewed client did not read the new files"
        install(kafka.client_cert, kafka.client_key)
        assert await service.renew_producer()
        assert await _post(http, port, "t-3") == 202
        accepted.append("t-3")
        key.unlink()
        assert not await service.renew_producer(), "a producer without its key file was swapped in"
        assert await _post(http, port, "t-4") == 202
        accepted.append("t-4")
        assert service.metrics.registry.get_sample_value("endpoint_producer_renewals_total") == 2
    stored = await stored_keys(kafka.bootstrap(), topic, len(accepted))
    assert stored == accepted


async def test_sighup_renews_the_producer_of_a_running_endpoint_without_losing_or_reordering(
    kafka: Any, tmp_path: Path
) -> None:
    topic = f"endpoint-sighup-{uuid.uuid4().hex[:10]}"
    await create_topic(kafka.bootstrap(), topic)
    config_file = tmp_path / "endpoint-config.json"
    config_file.write_text(json.dumps(make_config(topic, wal_mode=WalMode.DISABLE).to_json()))
    port, mon = free_ports(2)
    proc = endpoint_process(config_file, kafka.bootstrap(), port, mon, tmp_path / "endpoint.log")
    statuses: list[tuple[str, int]] = []
    stop = asyncio.Event()
    try:
        async with aiohttp.ClientSession() as http:
            await wait_until(lambda: healthy(http, port), 30, f"the endpoint to start ({proc.tail()})")

            async def client() -> None:  # one request after another: their order is the order Kafka must keep
                i = 0
                while not stop.is_set():
                    trace = f"s-{i:05d}"
                    i += 1
                    statuses.append((trace, await _post(http, port, trace)))

            async def renewed() -> bool:
                async with http.get(f"http://127.0.0.1:{mon}/metrics") as resp:
                    text = await resp.text()
                return "endpoint_producer_renewals_total 1.0" in text.splitlines()

            sending = asyncio.ensure_future(client())
            await wait_until(lambda: len(statuses) >= 20, 20, "requests before the signal")
            proc.popen.send_signal(signal.SIGHUP)
            await wait_until(renewed, 20, f"the renewal ({proc.tail()})")
            before = len(statuses)
            await wait_until(lambda: len(statuses) >= before + 20, 20, "requests after the renewal")
            stop.set()
            await sending
    finally:
        proc.stop()
    assert {s for _, s in statuses} == {202}, [x for x in statuses if x[1] != 202][:5]
    accepted = [trace for trace, _ in statuses]
    stored = await stored_keys(kafka.bootstrap(), topic, len(accepted))
    assert stored == accepted


async def test_renewals_asked_for_at_once_run_one_after_another_and_close_every_replaced_producer(
    kafka: Any, tmp_path: Path
) -> None:
    topic = f"endpoint-renew2-{uuid.uuid4().hex[:10]}"
    await create_topic(kafka.bootstrap(), topic)
    made: list[Any] = []
    async with running_endpoint(make_config(topic, wal_mode=WalMode.DISABLE), kafka.bootstrap()) as service:
        bus = service.bus
        make = bus.producer

        def tracking(**kwargs: Any) -> Any:
            made.append(make(**kwargs))
            return made[-1]

        bus.producer = tracking  # type: ignore[method-assign]
        first = service.producer
        assert all(await asyncio.gather(*(service.renew_producer() for _ in range(3))))
        assert len(made) == 3 and service.producer is made[-1]
        assert service.publisher is not None and service.publisher.producer is made[-1]
        for replaced in (first, *made[:-1]):
            assert replaced is not None
            with pytest.raises(BusClosed):
                replaced.produce(topic, b"late")
        async with aiohttp.ClientSession() as http:
            assert await _post(http, service.http_port, "after") == 202
        assert service.metrics.registry.get_sample_value("endpoint_producer_renewals_total") == 3
