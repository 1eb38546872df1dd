"""A dead letter over the broker's size limit, against the real broker: its input fitted, the dead-letter error
headers push it over. It must be written without its value and the stream must go on; writing it again as it is
would never succeed, and its partition's offset would never be committed."""

from __future__ import annotations

import logging
import uuid

import pytest

from algorun.api.configs import HookTarget
from algorun.bus import contract, open_bus
from algorun.bus.types import TopicSpec
from tests.support.hook_receiver import Receiver
from tests.support.hook_runner import (
    all_committed,
    header,
    hook_config,
    kafka_settings,
    read_topic,
    running_hooks,
)
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration]

# The hook runner's producer refuses messages over this (the broker's own limit is ~1 MB): the input below fits
# under it, input plus dead-letter headers does not.
PRODUCER_LIMIT = 100_000
BIG = 99_900


@pytest.mark.timeout(120)
async def test_a_dead_letter_too_large_is_written_without_its_value_and_the_stream_goes_on(
    kafka: object, caplog: pytest.LogCaptureFixture
) -> None:
    bootstrap = kafka.bootstrap("PLAINTEXT")  # type: ignore[attr-defined]
    topic, dlq = f"hook-in-{uuid.uuid4().hex[:8]}", f"hook-dlq-{uuid.uuid4().hex[:8]}"
    settings = kafka_settings(bootstrap)
    bus = open_bus(settings)  # the test's own client: default limits, writes the inputs and reads back
    hook_bus = open_bus(settings.model_copy(update={"producer_config": {"message.max.bytes": PRODUCER_LIMIT}}))
    await bus.create_topics([TopicSpec(topic, 1, 1), TopicSpec(dlq, 1, 1)])
    receiver = Receiver(failing=True, failure_status=400)  # a final answer: dead-lettered at once
    await receiver.start()
    config = hook_config(
        {"results": [topic]}, dlq, [HookTarget(pipeline_hook_input_name="results", web_hook_url=receiver.url)]
    )
    big = b"x" * BIG
    try:
        async with running_hooks(hook_bus, config, {"ALGORUN_HOOK_CIRCUIT_FAILS": "0"}):
            async with bus.producer() as producer:
                headers = contract.first_hop(trace_id="big", content_type="application/octet-stream")
                await producer.send(topic, big, key=b"big", headers=headers)
            await wait_until(lambda: len(receiver.requests) >= 1, 30, "the big message to reach the webhook")
            dead = await read_topic(bus, dlq, 1, limit=30)
            assert len(dead) == 1, "the dead letter was never written"
            await wait_until(lambda: all_committed(bus, config.consumer_group, [topic]), 20, "offset committed past it")
            # The stream goes on: a later message is delivered once the receiver answers again.
            receiver.failing = False
            async with bus.producer() as producer:
                headers = contract.first_hop(trace_id="later", content_type="text/plain")
                await producer.send(topic, b"later", key=b"later", headers=headers)
            await wait_until(lambda: [r.body for r in receiver.accepted] == [b"later"], 30, "the later message")
            await wait_until(lambda: all_committed(bus, config.consumer_group, [topic]), 20, "everything committed")
        (letter,) = dead
        assert letter.value == b""
        assert header(letter, contract.ERROR_VALUE_OMITTED) == str(len(big))
        assert header(letter, "errorTopic") == topic
        assert header(letter, "errorPartition") == "0"
        assert header(letter, "errorOffset") == "0"
        assert header(letter, "errorType") == "WebhookDeliveryFailed"
        assert "HTTP 400" in (header(letter, "errorMessage") or "")
        assert header(letter, "hookID") == "results-0"
        assert header(letter, "hookInputName") == "results"
        assert header(letter, "traceID") == "big"
        assert letter.key == b"big"
        assert receiver.requests[0].body == big, "the webhook got the whole value"
        assert len(await read_topic(bus, dlq, 2, limit=2)) == 1, "one dead letter, not one per attempt"
        too_large = [r for r in caplog.records if r.levelno >= logging.ERROR and "over the broker's" in r.message]
        assert len(too_large) == 1, [r.message for r in caplog.records if r.levelno >= logging.ERROR]
    finally:
        await receiver.stop()
        await hook_bus.close()
        await bus.close()
