"""The hook runner against the real test-bed broker and real HTTP receivers started here."""

from __future__ import annotations

import time
import uuid

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
    kafka_settings,
    produce,
    read_topic,
    running_hooks,
    wait_until,
)

pytestmark = [pytest.mark.integration]

OUTAGE_S = 60.0


def _names() -> tuple[str, str]:
    return f"hook-in-{uuid.uuid4().hex[:8]}", f"hook-dlq-{uuid.uuid4().hex[:8]}"


@pytest.mark.timeout(240)
async def test_a_receiver_down_for_60s_then_back_gets_every_message_signed(kafka: object) -> None:
    """The issue's case: the receiver answers 503 for 60 s, then 200. Every message arrives, signed, with its
    metadata; none is dead-lettered (the default budget is 600 s); the offsets are committed afterwards. Meanwhile
    the webhook's circuit is open: the receiver gets a probe every few seconds, not every retry of every message."""
    bootstrap = kafka.bootstrap("PLAINTEXT")  # type: ignore[attr-defined]
    topic, dlq = _names()
    bus = open_bus(kafka_settings(bootstrap))
    await bus.create_topics([TopicSpec(topic, 2, 1), TopicSpec(dlq, 1, 1)])
    receiver = Receiver(failing=True)
    await receiver.start()
    hook = HookTarget(
        pipeline_hook_input_name="results",
        web_hook_url=receiver.url,
        http_verb="PUT",
        headers={"X-Team": "blue", "Authorization": "Bearer abc"},
    )
    config = hook_config({"results": [topic]}, dlq, [hook])
    # Backoff up to 4 s: without the circuit, ~15 retries of each message during the outage (300 requests).
    env = {"ALGORUN_HOOK_BACKOFF_BASE": "0.25", "ALGORUN_HOOK_BACKOFF_MAX": "4", "ALGORUN_HOOK_CIRCUIT_OPEN": "5"}
    try:
        async with running_hooks(bus, config, env) as runner:
            bodies = await produce(bus, topic, 20)
            opened = runner.metrics.circuit_opened.labels("results-0")
            await wait_until(lambda: opened._value.get() >= 1, 30, "the circuit to open")
            # Ten requests in a row failed (ALGORUN_HOOK_CIRCUIT_FAILS): the outage lasts 60 s more. (The
            # receiver's behaviour is what is timed here; the test itself waits on what the receiver got.)
            receiver.fail_until = time.monotonic() + OUTAGE_S
            await wait_until(
                lambda: {r.body for r in receiver.accepted} == set(bodies), OUTAGE_S + 30, "all 20 delivered"
            )
            assert min(r.at for r in receiver.accepted) >= receiver.fail_until
            await wait_until(lambda: all_committed(bus, config.consumer_group, [topic]), 20, "offsets committed")
            assert runner.tracker.uncommitted == 0
            assert runner.metrics.circuit_state.labels("results-0")._value.get() == 0, "closed again"
        failed = [r for r in receiver.requests if r.status == 503]
        # The first attempt of each message, then one probe per open period (5 s) of the outage, and a few more
        # for the attempts that were already on their way when it opened.
        assert 10 <= len(failed) <= 20 + OUTAGE_S / 5 + 10, f"{len(failed)} failed requests during the outage"
        assert len(receiver.accepted) == 20, "each message is delivered once when nothing crashed"
        for r in receiver.accepted:
            assert r.method == "PUT"
            assert verify(SECRET.encode(), r.body, r.headers[SIGNATURE_HEADER]), "signature must verify"
            assert r.headers["X-Team"] == "blue" and r.headers["Authorization"] == "Bearer abc"
            assert r.headers["Content-Type"] == "application/json"
            trace = r.headers["X-Algorun-Trace-Id"]
            assert trace.encode() in r.body, "the traceID header belongs to this body"
            assert r.headers["X-Algorun-Endpoint-Params"] == "a=1"
            assert r.headers["X-Algorun-Hook"] == "results-0"
            assert r.headers["X-Algorun-Topic"] == topic
        assert any(int(r.headers["X-Algorun-Attempt"]) > 1 for r in receiver.accepted), "retried messages"
        assert await read_topic(bus, dlq, 0, limit=1) == []
    finally:
        await receiver.stop()
        await bus.close()


@pytest.mark.timeout(120)
async def test_a_failing_hook_dead_letters_without_delaying_a_healthy_one(kafka: object) -> None:
    bootstrap = kafka.bootstrap("PLAINTEXT")  # type: ignore[attr-defined]
    topic, dlq = _names()
    bus = open_bus(kafka_settings(bootstrap))
    await bus.create_topics([TopicSpec(topic, 1, 1), TopicSpec(dlq, 1, 1)])
    healthy, broken = Receiver(), Receiver(failing=True, failure_status=500)
    await healthy.start()
    await broken.start()
    hooks = [
        HookTarget(pipeline_hook_input_name="results", web_hook_url=broken.url),
        HookTarget(pipeline_hook_input_name="results", web_hook_url=healthy.url),
    ]
    config = hook_config({"results": [topic]}, dlq, hooks)
    budget = 6.0
    env = {
        "ALGORUN_HOOK_BACKOFF_BASE": "0.1",
        "ALGORUN_HOOK_BACKOFF_MAX": "0.5",
        "ALGORUN_HOOK_RETRY_BUDGET": str(budget),
        "ALGORUN_HOOK_CONCURRENCY": "2",  # fewer request places than messages: retries must not hold them
        "ALGORUN_HOOK_CIRCUIT_FAILS": "0",  # every message retries on its own (the circuit has its own test)
    }
    try:
        async with running_hooks(bus, config, env):
            started = time.monotonic()
            bodies = await produce(bus, topic, 10)
            await wait_until(lambda: len(healthy.accepted) == 10, budget, "the healthy hook to get all 10")
            healthy_done = time.monotonic() - started
            assert not any(r.status == 200 for r in broken.requests)
            dead = await read_topic(bus, dlq, 10, limit=budget + 30)
            await wait_until(lambda: all_committed(bus, config.consumer_group, [topic]), 20, "offsets committed")
        assert healthy_done < budget, f"the healthy hook waited for the failing one ({healthy_done:.1f}s)"
        assert sorted(m.value for m in dead) == sorted(bodies)
        for m in dead:
            assert header(m, "hookID") == "results-0"
            assert header(m, "hookInputName") == "results"
            assert "HTTP 500" in (header(m, "errorMessage") or "")
            assert "retry budget exhausted" in (header(m, "errorMessage") or "")
            assert header(m, "errorType") == "WebhookDeliveryFailed"
            assert header(m, "errorTopic") == topic
            assert header(m, "contentType") == "application/json"
            assert (header(m, "traceID") or "").encode() in m.value
        assert len(broken.requests) >= 30, "the failing hook was not retried"
        assert {r.body for r in healthy.accepted} == set(bodies)
    finally:
        await healthy.stop()
        await broken.stop()
        await bus.close()
