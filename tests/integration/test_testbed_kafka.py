"""Acceptance tests proving the Kafka part of the test bed is a real broker with real security."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Producer

from tests.support.kafka import LISTENERS, KafkaBroker

pytestmark = pytest.mark.integration


def _produce(conf: dict[str, Any], topic: str, values: list[bytes]) -> None:
    producer = Producer({**conf, "acks": "all"})
    delivered: list[KafkaError | None] = []
    for v in values:
        producer.produce(topic, v, on_delivery=lambda err, _msg: delivered.append(err))
    assert producer.flush(30) == 0, "messages still in flight after 30s"
    assert delivered == [None] * len(values)


def _consume(conf: dict[str, Any], topic: str, count: int, timeout: float = 30.0) -> list[bytes]:
    consumer = Consumer({**conf, "group.id": f"g-{uuid.uuid4().hex[:8]}", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            value = msg.value()
            assert value is not None
            got.append(value)
    finally:
        consumer.close()
    return got


def _errors(conf: dict[str, Any], want: str, timeout: float = 15.0) -> list[KafkaError]:
    """Errors a producer reports (via error_cb) until one mentions `want`, or the timeout passes."""
    errors: list[KafkaError] = []
    producer = Producer({**conf, "error_cb": errors.append, "log_level": 0})
    producer.produce("never-created", b"x")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not any(want in e.str() for e in errors):
        producer.poll(0.2)
    producer.purge()
    return errors


@pytest.mark.parametrize("listener", LISTENERS)
def test_produce_and_consume_through_each_listener(kafka: KafkaBroker, listener: str) -> None:
    topic = kafka.unique_topic(listener.lower().replace("_", "-"))
    kafka.create_topic(topic, partitions=2)
    conf = kafka.client_config(listener)
    values = [f"{listener}-{i}".encode() for i in range(20)]

    _produce(conf, topic, values)

    assert sorted(_consume(conf, topic, len(values))) == sorted(values)


@pytest.mark.parametrize(
    ("listener", "message"),
    [
        ("SASL_SSL", "invalid credentials with SASL mechanism SCRAM-SHA-512"),
        ("SASL_PLAINTEXT", "Invalid username or password"),
    ],
)
def test_wrong_password_is_rejected(kafka: KafkaBroker, listener: str, message: str) -> None:
    conf = kafka.client_config(listener, **{"sasl.password": "not-the-password"})

    errors = _errors(conf, message)

    auth = [e for e in errors if e.code() == KafkaError._AUTHENTICATION]
    assert auth, f"expected an authentication error, got {[e.str() for e in errors]}"
    assert message in auth[0].str()


def test_untrusted_client_certificate_is_rejected(kafka: KafkaBroker) -> None:
    conf = kafka.client_config(
        "SSL",
        **{
            "ssl.certificate.location": str(kafka.untrusted_client_cert),
            "ssl.key.location": str(kafka.untrusted_client_key),
        },
    )

    errors = _errors(conf, "bad certificate")

    assert any(e.code() in (KafkaError._TRANSPORT, KafkaError._SSL) and "bad certificate" in e.str() for e in errors), [
        e.str() for e in errors
    ]


def test_ssl_listener_requires_a_client_certificate(kafka: KafkaBroker) -> None:
    conf = kafka.client_config("SSL")
    del conf["ssl.certificate.location"], conf["ssl.key.location"]

    errors = _errors(conf, "certificate")

    assert any("certificate" in e.str() for e in errors), [e.str() for e in errors]
