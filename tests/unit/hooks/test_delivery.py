"""The retry loop of `Delivery` against a scripted local HTTP server, with an injected sleep: which answers are
retried, which are final, what a Retry-After does, and that the budget ends it."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import aiohttp
import pytest

from algorun.webhook.backoff import RetryPolicy
from algorun.webhook.delivery import ATTEMPT_HEADER, Delivery, Webhook, classify, post_json, retry_after_seconds
from algorun.webhook.signing import SIGNATURE_HEADER, verify
from tests.support.hook_receiver import Script, serve_script


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.mark.parametrize(
    ("status", "expected"),
    [(200, (True, False)), (204, (True, False)), (301, (False, False)), (400, (False, False)), (404, (False, False)),
     (408, (False, True)), (429, (False, True)), (500, (False, True)), (503, (False, True))],
)  # fmt: skip
def test_classify(status: int, expected: tuple[bool, bool]) -> None:
    assert classify(status) == expected


@pytest.mark.parametrize(("value", "seconds"), [(None, None), ("", None), ("3", 3.0), (" 1.5 ", 1.5), ("-1", None),
                                                ("Wed, 21 Oct 2015 07:28:00 GMT", None), ("nan", None)])  # fmt: skip
def test_retry_after(value: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(value) == seconds


async def test_retries_until_the_receiver_recovers(session: aiohttp.ClientSession) -> None:
    script = Script((503, {"Retry-After": "2"}), (500, {}), (200, {}))
    server = await serve_script(script)
    sleeps = Sleeps()
    try:
        delivery = Delivery(session, RetryPolicy(base_s=0.1, max_delay_s=5), rng=random.Random(0), sleep=sleeps)
        outcome = await delivery.deliver(Webhook(script.url, "PATCH", b"k"), b"payload", {"X-A": "1"})
    finally:
        await server.cleanup()
    assert outcome.delivered and outcome.attempts == 3 and outcome.status == 200
    assert sleeps.waits[0] == 2.0, "Retry-After is honoured"
    assert 0.1 <= sleeps.waits[1] <= 0.2
    assert [s[1][ATTEMPT_HEADER] for s in script.seen] == ["1", "2", "3"]
    for method, headers, body in script.seen:
        assert method == "PATCH" and body == b"payload" and headers["X-A"] == "1"
        assert verify(b"k", body, headers[SIGNATURE_HEADER])


async def test_a_client_error_is_final(session: aiohttp.ClientSession) -> None:
    script = Script((422, {}))
    server = await serve_script(script)
    try:
        outcome = await Delivery(session, RetryPolicy(), sleep=Sleeps()).deliver(Webhook(script.url), b"x", {})
    finally:
        await server.cleanup()
    assert not outcome.delivered and outcome.attempts == 1 and outcome.status == 422
    assert outcome.error is not None and "HTTP 422" in outcome.error and "not retriable" in outcome.error


async def test_the_attempt_limit_ends_retries_with_the_last_error(session: aiohttp.ClientSession) -> None:
    script = Script((502, {}))
    server = await serve_script(script)
    try:
        policy = RetryPolicy(max_attempts=4, base_s=0.01, max_delay_s=0.01)
        outcome = await Delivery(session, policy, sleep=Sleeps()).deliver(Webhook(script.url), b"x", {})
    finally:
        await server.cleanup()
    assert not outcome.delivered and outcome.attempts == 4 and len(script.seen) == 4
    assert outcome.error is not None and "HTTP 502" in outcome.error and "retry budget exhausted" in outcome.error


async def test_an_unreachable_receiver_is_retried_until_the_budget(session: aiohttp.ClientSession) -> None:
    script = Script((200, {}))
    server = await serve_script(script)
    url = script.url
    await server.cleanup()  # nothing listens there any more: connection refused
    sleeps = Sleeps()
    policy = RetryPolicy(budget_s=0.0, base_s=0.01, max_delay_s=0.01)
    outcome = await Delivery(session, policy, sleep=sleeps).deliver(Webhook(url), b"x", {})
    assert not outcome.delivered and outcome.status is None and outcome.attempts == 1
    assert outcome.error is not None and "budget" in outcome.error


async def test_an_invalid_url_is_not_retried(session: aiohttp.ClientSession) -> None:
    outcome = await Delivery(session, RetryPolicy(), sleep=Sleeps()).deliver(Webhook("not a url"), b"x", {})
    assert not outcome.delivered and outcome.attempts == 1


async def test_post_json_sends_signed_compact_json() -> None:
    script = Script((200, {}))
    server = await serve_script(script)
    try:
        outcome = await post_json(script.url, {"type": "Deployed", "n": 1}, secret=b"s", headers={"X-B": "2"})
    finally:
        await server.cleanup()
    assert outcome.delivered
    _, headers, body = script.seen[0]
    assert body == b'{"type":"Deployed","n":1}'
    assert headers["Content-Type"] == "application/json" and headers["X-B"] == "2"
    assert verify(b"s", body, headers[SIGNATURE_HEADER])
