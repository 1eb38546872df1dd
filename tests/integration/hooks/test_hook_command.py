"""`algorun hook` as a real process on the embedded local log (the bus `algorun run` uses): readiness, signed
deliveries, a dead letter, metrics, committed offsets and a clean exit on SIGTERM."""

from __future__ import annotations

import sys
from pathlib import Path

import aiohttp
import pytest

from algorun.api.configs import HookTarget
from algorun.bus import open_bus
from algorun.bus.types import TopicSpec
from algorun.webhook.signing import SIGNATURE_HEADER, verify
from tests.support.hook_receiver import Receiver
from tests.support.hook_runner import (
    SECRET,
    all_committed,
    header,
    hook_config,
    produce,
    read_topic,
    wait_until,
)
from tests.support.paths import REPO
from tests.support.procs import ManagedProcess, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as r:
            return r.status, await r.text()
    except (aiohttp.ClientError, TimeoutError):
        return 0, ""


async def test_hook_command_on_the_local_log(tmp_path: Path) -> None:
    log_url = f"local://{tmp_path / 'log.db'}"
    bus = open_bus(log_url)
    topic, dlq = "algorun.acme.hooks.algo.out", "algorun.acme.hooks.hook.dlq"
    await bus.create_topics([TopicSpec(topic, 2), TopicSpec(dlq, 1)])
    good, gone = Receiver(), Receiver(failing=True, failure_status=410)
    await good.start()
    await gone.start()
    config = hook_config(
        {"results": [topic]},
        dlq,
        [
            HookTarget(pipeline_hook_input_name="results", web_hook_url=good.url),
            HookTarget(pipeline_hook_input_name="results", web_hook_url=gone.url),
        ],
    )
    config_path = tmp_path / "hook.json"
    config_path.write_text(config.model_dump_json(by_alias=True))
    port = free_port()
    proc = ManagedProcess(
        "algorun-hook",
        [sys.executable, "-m", "algorun.cli.main", "hook", "--config", str(config_path), "--health-port", str(port)],
        tmp_path / "hook.log",
        env={"ALGORUN_BUS": log_url, "ALGORUN_HOOK_SECRET": SECRET},
        cwd=REPO,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:

            async def ready() -> bool:
                assert proc.alive(), proc.failure("exited")
                return (await _get(session, f"{base}/ready"))[0] == 200

            await wait_until(ready, 60, "/ready to answer 200")
            bodies = await produce(bus, topic, 6)
            await wait_until(lambda: len(good.accepted) == 6, 30, "6 deliveries")
            dead = await read_topic(bus, dlq, 6, limit=30)
            await wait_until(lambda: all_committed(bus, config.consumer_group, [topic]), 30, "offsets committed")
            status, metrics = await _get(session, f"{base}/metrics")
        assert status == 200
        assert 'algorun_hook_deliveries_total{hook="results-0"} 6.0' in metrics
        assert 'algorun_hook_dead_letters_total{hook="results-1"} 6.0' in metrics
        assert 'algorun_hook_delivery_failures_total{hook="results-1",reason="http_410"} 6.0' in metrics
        assert "algorun_hook_request_duration_seconds_bucket" in metrics
        assert 'algorun_hook_backlog{hook="results-0"} 0.0' in metrics
        assert {r.body for r in good.accepted} == set(bodies)
        assert all(verify(SECRET.encode(), r.body, r.headers[SIGNATURE_HEADER]) for r in good.accepted)
        assert len(gone.requests) == 6, "a 410 is final: no retries"
        assert sorted(m.value for m in dead) == sorted(bodies)
        assert all("HTTP 410" in (header(m, "errorMessage") or "") for m in dead)
        assert all(header(m, "hookID") == "results-1" for m in dead)
        proc.stop(grace=20)
        assert proc.popen.returncode == 0, proc.tail()
    finally:
        proc.stop()
        await good.stop()
        await gone.stop()
        await bus.close()
