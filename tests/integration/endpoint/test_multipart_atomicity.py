"""A multipart upload triggers its run only once every part is stored: a refused part means no `run=true` message
for that trace ever reaches the topic (the runner would otherwise execute the trace with an input missing)."""

from __future__ import annotations

import json
import uuid

import aiohttp
import pytest

from tests.support.endpoint import (
    NAME,
    OWNER,
    create_topic,
    header,
    make_config,
    read_topic,
    running_endpoint,
)

pytestmark = pytest.mark.integration
BIN = "application/octet-stream"
OVERSIZED = 1_500_000
"""Under the endpoint's body limit below, over Kafka's (librdkafka's `message.max.bytes`, 1 000 000): the
endpoint takes the part, the broker refuses it as too large."""


async def test_a_refused_part_answers_the_error_and_never_stores_the_trigger(bootstrap: str) -> None:
    topic = f"endpoint-mp-{uuid.uuid4().hex[:10]}"
    await create_topic(bootstrap, topic)
    env = {"ALGORUN_ENDPOINT_MAX_BODY_BYTES": str(2 * OVERSIZED)}
    trace, sentinel = f"mp-{uuid.uuid4().hex[:8]}", f"after-{uuid.uuid4().hex[:8]}"
    async with (
        running_endpoint(make_config(topic, content_type=BIN), bootstrap, env) as ep,
        aiohttp.ClientSession() as http,
    ):
        base = f"http://127.0.0.1:{ep.http_port}/{OWNER}/{NAME}/in"
        form = aiohttp.FormData()
        form.add_field("file", b"small", filename="a.bin", content_type=BIN)
        form.add_field("file", b"x" * OVERSIZED, filename="b.bin", content_type=BIN)
        resp = await http.post(f"{base}/{trace}", data=form)
        answer = json.loads(await resp.text())
        # Written after the refused request answered: once it is read back (one partition, read in offset order),
        # everything that request wrote precedes it.
        after = await http.post(f"{base}/{sentinel}", data=b"done", headers={"Content-Type": BIN})
    assert resp.status == 413, answer
    assert answer["statusCode"] == 413
    assert after.status == 202
    msgs = await read_topic(bootstrap, topic, 2)
    ours = [m for m in msgs if m.key == trace.encode()]
    assert [header(m, "run") for m in ours if header(m, "run") != "false"] == [], "a trigger was stored"
    assert all(header(m, "fileName") == "a.bin" for m in ours)  # at most the accepted part, staged
    assert sentinel.encode() in [m.key for m in msgs]
