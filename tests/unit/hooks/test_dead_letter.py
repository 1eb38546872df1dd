"""Writing a dead letter: transient refusals are retried until acknowledged (the offset waits), but one over the
broker's size limit never fits, so it is written without its value instead of being retried forever (which would
stall its partition's commits). The real broker's refusal is covered by the integration test of the same name."""

from __future__ import annotations

from typing import Any, cast

import pytest

from algorun.api.configs import HookConfig, HookTarget, Identity
from algorun.bus import contract
from algorun.bus.errors import BusError, MessageTooLarge
from algorun.bus.interface import Bus, Producer
from algorun.bus.types import Headers, Message
from algorun.hooks.service import HookRunner
from algorun.hooks.settings import build_settings
from algorun.webhook.delivery import Outcome
from tests.support.fakes import ScriptedSender

VALUE = b"v" * 1000


def _runner(producer: ScriptedSender) -> HookRunner:
    config = HookConfig(
        identity=Identity(deployment_owner="o", deployment_name="d", pipeline_owner="o", pipeline_name="p"),
        consumer_group="g",
        dead_letter_topic="dlq",
        inputs={"results": ["in"]},
        web_hooks=[HookTarget(pipeline_hook_input_name="results", web_hook_url="http://hook/")],
    )
    runner = HookRunner(config, build_settings(config, {}), cast(Bus, None), cast(Any, None))
    runner._producer = cast(Producer, producer)
    return runner


async def _dead_letter(runner: HookRunner) -> None:
    msg = Message("in", 3, 42, b"k", VALUE, contract.first_hop(trace_id="t"), 0)
    outcome = Outcome(False, 1, 400, "HTTP 400 Bad Request", 0.0)
    await runner._dead_letter(runner.settings.targets[0], msg, outcome)


def _header(headers: Headers, name: str) -> str | None:
    values = [v.decode() for k, v in headers if k == name]
    return values[-1] if values else None


def _dead_letters(runner: HookRunner) -> float:
    return cast(float, runner.metrics.dead_letters.labels("results-0")._value.get())


async def test_a_dead_letter_too_large_is_written_once_more_without_its_value(caplog: pytest.LogCaptureFixture) -> None:
    producer = ScriptedSender(MessageTooLarge("too large"), None)
    runner = _runner(producer)
    await _dead_letter(runner)
    (_, first, _, _), (topic, value, key, headers) = producer.sent
    assert first == VALUE
    assert (topic, value, key) == ("dlq", b"", b"k")
    assert _header(headers, contract.ERROR_VALUE_OMITTED) == str(len(VALUE))
    assert [k for k, _ in headers].count(contract.ERROR_VALUE_OMITTED) == 1
    assert _header(headers, contract.ERROR_TOPIC) == "in"
    assert _header(headers, contract.ERROR_PARTITION) == "3"
    assert _header(headers, contract.ERROR_OFFSET) == "42"
    assert _header(headers, "hookID") == "results-0"
    assert _dead_letters(runner) == 1
    assert len([r for r in caplog.records if r.levelname == "ERROR"]) == 1


async def test_a_transient_refusal_is_retried_with_the_whole_value() -> None:
    producer = ScriptedSender(BusError("broker unavailable"), None)
    runner = _runner(producer)
    await _dead_letter(runner)  # one backoff wait (0.5 s)
    assert [value for _, value, _, _ in producer.sent] == [VALUE, VALUE]
    assert _header(producer.sent[1][3], contract.ERROR_VALUE_OMITTED) is None
    assert _dead_letters(runner) == 1


async def test_a_dead_letter_too_large_even_without_its_value_is_given_up_not_retried_forever(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Its key or headers alone are over the limit: no write can succeed, so the offset must not wait for one."""
    producer = ScriptedSender(MessageTooLarge("too large"), MessageTooLarge("still too large"), None)
    runner = _runner(producer)
    await _dead_letter(runner)
    assert [value for _, value, _, _ in producer.sent] == [VALUE, b""]
    assert _dead_letters(runner) == 0
    assert "giving up" in caplog.records[-1].message
