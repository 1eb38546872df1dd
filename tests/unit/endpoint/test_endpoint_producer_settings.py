"""The endpoint's producer settings: the pipeline's `endpoint.kafka.params` tune librdkafka, but cannot weaken what
a 202 promises (acks=all, idempotent), and a missing topic is reported as such before the delivery times out."""

from __future__ import annotations

import logging

import pytest

from algorun.api.configs import EndpointConfig, EndpointPathConfig, Identity
from algorun.bus import KafkaSettings
from algorun.endpoint.service import endpoint_kafka_settings
from algorun.endpoint.settings import EndpointSettings, build_settings

KAFKA = KafkaSettings(bootstrap_servers="b:9092")


def _settings(env: dict[str, str] | None = None) -> EndpointSettings:
    ident = Identity(deployment_owner="acme", deployment_name="orders", pipeline_owner="acme", pipeline_name="p")
    return build_settings(EndpointConfig(identity=ident, paths=[EndpointPathConfig(name="in", topic="t")]), env or {})


@pytest.mark.parametrize(
    "params",
    [
        {"acks": "1"},
        {"acks": "0", "enable.idempotence": "false"},
        {"request.required.acks": "1"},
        {"enable.idempotence": "False", "linger.ms": "7"},
    ],
)
def test_params_cannot_weaken_acks_or_idempotence_and_trying_is_logged(
    params: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="algorun.endpoint.service"):
        producer = endpoint_kafka_settings(KAFKA, _settings(), params).producer_config
    assert producer["acks"] == "all"
    assert producer["enable.idempotence"] is True
    assert "request.required.acks" not in producer  # librdkafka's alias: whichever came last would win
    assert producer.get("linger.ms") == params.get("linger.ms", 3)  # other tuning is kept
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    for name, value in params.items():
        if name != "linger.ms":
            assert f"{name}={value}" in warned


def test_params_that_keep_the_guarantees_are_not_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="algorun.endpoint.service"):
        producer = endpoint_kafka_settings(
            KAFKA, _settings(), {"acks": "-1", "enable.idempotence": "true"}
        ).producer_config
    assert (producer["acks"], producer["enable.idempotence"]) == ("all", True)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_missing_topic_is_reported_before_the_delivery_times_out() -> None:
    """librdkafka waits `topic.metadata.propagation.max.ms` before it believes a topic is missing; longer than the
    ack timeout, a missing topic looked like a broker timeout (retried from the log forever)."""
    settings = _settings({"ALGORUN_ENDPOINT_ACK_TIMEOUT": "2"})
    assert endpoint_kafka_settings(KAFKA, settings).producer_config["topic.metadata.propagation.max.ms"] == 1000
    shorter = {"topic.metadata.propagation.max.ms": "500"}
    assert endpoint_kafka_settings(KAFKA, settings, shorter).producer_config["topic.metadata.propagation.max.ms"] == 500


def test_the_publishers_size_limit_is_the_producers_own() -> None:
    """A user who raised message.max.bytes must not get 413 below it in the write-ahead log's modes."""
    from types import SimpleNamespace

    from algorun.endpoint.service import _message_max_bytes

    raised = KafkaSettings(bootstrap_servers="k:9092", producer_config={"message.max.bytes": "2000000"})
    assert _message_max_bytes(SimpleNamespace(settings=raised)) == 2_000_000  # type: ignore[arg-type]
    assert _message_max_bytes(SimpleNamespace(settings=KafkaSettings(bootstrap_servers="k:9092"))) == 1_000_000  # type: ignore[arg-type]
    assert _message_max_bytes(SimpleNamespace()) == 1_000_000  # type: ignore[arg-type]  # the local log
