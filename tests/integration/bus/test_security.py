"""The Kafka backend connects through every test-bed listener with matching settings, and fails clearly with
wrong ones (typed errors, not hangs or silent downgrades)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import SecretStr

from algorun.bus import AuthenticationFailed, AuthType, BrokerUnreachable, BusError, TopicSpec, open_bus
from tests.support.bus_settings import LISTENERS, kafka_settings, settings_for
from tests.support.consuming import consume_n

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def broker(request: pytest.FixtureRequest) -> Any:
    kafka_settings(request)  # skips (or fails in CI) when there is no test-bed broker
    return request.getfixturevalue("kafka")


@pytest.mark.parametrize("listener", LISTENERS)
async def test_round_trip_through_each_listener(broker: Any, listener: str) -> None:
    bus = open_bus(settings_for(broker, listener))
    topic = broker.unique_topic("sec")
    try:
        await bus.create_topics([TopicSpec(topic)])
        async with bus.producer() as p:
            await p.send(topic, listener.encode(), headers=[("traceID", b"t")])
        async with bus.consumer(f"g-{topic}", [topic]) as c:
            (m,) = await consume_n(c, 1)
        assert m.value == listener.encode()
    finally:
        await bus.close()


WRONG = {
    "SASL_SSL wrong password": (
        "SASL_SSL",
        {"password": SecretStr("not-the-password")},
        AuthenticationFailed,
    ),
    "SASL_PLAINTEXT wrong password": (
        "SASL_PLAINTEXT",
        {"password": SecretStr("not-the-password")},
        AuthenticationFailed,
    ),
    "mTLS untrusted client certificate": ("SSL", {}, AuthenticationFailed),
    "TLS without a client certificate": ("SSL", {"auth_type": AuthType.NONE}, AuthenticationFailed),
    "plaintext client on the TLS listener": ("SSL", {"tls": False, "auth_type": AuthType.NONE}, BusError),
    "TLS with another CA": ("TLS", {}, AuthenticationFailed),
    "SASL_SSL with another CA": ("SASL_SSL", {}, AuthenticationFailed),
}


@pytest.mark.parametrize("case", sorted(WRONG))
async def test_wrong_settings_fail_with_a_typed_error(broker: Any, case: str) -> None:
    listener, changes, expected = WRONG[case]
    if case.startswith("mTLS untrusted"):
        changes = {"cert_location": str(broker.untrusted_client_cert), "key_location": str(broker.untrusted_client_key)}
    if case.endswith("with another CA"):  # the broker's certificate does not verify: never a silent downgrade
        changes = {"ca_location": str(broker.untrusted_ca_file)}
    bus = open_bus(settings_for(broker, listener, **changes))
    try:
        with pytest.raises(expected) as info:
            await asyncio.wait_for(bus.list_topics(), 60)
        assert broker.bootstrap(listener) in str(info.value)
    finally:
        await bus.close()


async def test_producer_reports_bad_credentials_instead_of_waiting(broker: Any) -> None:
    bus = open_bus(settings_for(broker, "SASL_SSL", password=SecretStr("nope")))
    async with bus.producer() as p:
        with pytest.raises(AuthenticationFailed):
            await asyncio.wait_for(p.send(broker.unique_topic("auth"), b"x"), 60)


async def test_unreachable_broker_is_a_typed_retriable_error() -> None:
    from tests.support.procs import free_port

    bus = open_bus(f"kafka://127.0.0.1:{free_port()}")
    with pytest.raises(BrokerUnreachable) as info:
        await asyncio.wait_for(bus.list_topics(), 60)
    assert info.value.retriable
