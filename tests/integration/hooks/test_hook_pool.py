"""A webhook's deliveries share a pool of `concurrency` workers: a message waiting for its next retry leaves the
pool, so the messages behind it in the same webhook's queue are delivered meanwhile (embedded log, real HTTP
receiver started here)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from aiohttp import web

from algorun.api.configs import HookTarget
from algorun.bus import open_bus
from algorun.bus.types import TopicSpec
from tests.support.hook_receiver import Received, Receiver
from tests.support.hook_runner import all_committed, hook_config, produce, read_topic, running_hooks, wait_until

pytestmark = [pytest.mark.integration]


class PoisonReceiver(Receiver):
    """Answers 503 to every request whose body contains `poison`, 200 to the others."""

    poison = b'"i": 0,'

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        status = 503 if self.poison in body else 200
        self.requests.append(Received(body, dict(request.headers), request.method, request.path, status, 0.0))
        return web.Response(status=status, text="ok" if status == 200 else "not this one")


@pytest.mark.timeout(120)
async def test_a_message_waiting_to_retry_does_not_hold_the_only_worker(tmp_path: Path) -> None:
    topic, dlq = f"pool-in-{uuid.uuid4().hex[:8]}", f"pool-dlq-{uuid.uuid4().hex[:8]}"
    bus = open_bus(f"local://{tmp_path}/bus.db")
    await bus.create_topics([TopicSpec(topic, 1, 1), TopicSpec(dlq, 1, 1)])
    receiver = PoisonReceiver()
    await receiver.start()
    config = hook_config(
        {"results": [topic]}, dlq, [HookTarget(pipeline_hook_input_name="results", web_hook_url=receiver.url)]
    )
    budget = 20.0
    env = {
        "ALGORUN_HOOK_CONCURRENCY": "1",  # one seat: a retry that kept it would block every message behind it
        "ALGORUN_HOOK_BACKOFF_BASE": "0.5",
        "ALGORUN_HOOK_BACKOFF_MAX": "1",
        "ALGORUN_HOOK_RETRY_BUDGET": str(budget),
        "ALGORUN_HOOK_CIRCUIT_FAILS": "0",  # the poison message alone fails: no circuit
    }
    try:
        async with running_hooks(bus, config, env):
            started = time.monotonic()
            bodies = await produce(bus, topic, 6)  # the first one is the poison
            await wait_until(lambda: len(receiver.accepted) == 5, budget / 2, "the 5 healthy messages delivered")
            healthy_done = time.monotonic() - started
            dead = await read_topic(bus, dlq, 1, limit=budget + 30)
            await wait_until(lambda: all_committed(bus, config.consumer_group, [topic]), 20, "offsets committed")
        assert healthy_done < budget / 2, f"the healthy messages waited for the retrying one ({healthy_done:.1f}s)"
        assert {r.body for r in receiver.accepted} == set(bodies[1:])
        assert [m.value for m in dead] == [bodies[0]]
        assert sum(1 for r in receiver.requests if r.body == bodies[0]) >= 3, "the poison message was not retried"
    finally:
        await receiver.stop()
        await bus.close()
