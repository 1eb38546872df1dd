"""Bus settings for each listener of the test-bed broker (tests.support.kafka.KafkaBroker), as a user writes them."""

from __future__ import annotations

import os
from typing import Any

import pytest
from pydantic import SecretStr

from algorun.bus import AuthType, KafkaSettings
from tests.support.kafka import LISTENERS

__all__ = ["LISTENERS", "kafka_settings", "settings_for"]


def settings_for(broker: Any, listener: str = "PLAINTEXT", **changes: Any) -> KafkaSettings:
    """The `KafkaSettings` a user would write for `listener`, with `changes` applied (to test wrong ones)."""
    listener = listener.upper()
    base: dict[str, Any] = {"bootstrap_servers": broker.bootstrap(listener)}
    if listener == "SSL":
        base |= {
            "tls": True,
            "ca_location": str(broker.ca_file),
            "auth_type": AuthType.TLS,
            "cert_location": str(broker.client_cert),
            "key_location": str(broker.client_key),
        }
    elif listener == "TLS":
        base |= {"tls": True, "ca_location": str(broker.ca_file)}
    elif listener == "SASL_SSL":
        base |= {
            "tls": True,
            "ca_location": str(broker.ca_file),
            "auth_type": AuthType.SCRAM_SHA_512,
            "username": broker.credentials.scram_user,
            "password": SecretStr(broker.credentials.scram_password),
        }
    elif listener == "SASL_PLAINTEXT":
        base |= {
            "auth_type": AuthType.PLAIN,
            "username": broker.credentials.plain_user,
            "password": SecretStr(broker.credentials.plain_password),
        }
    base |= changes
    # Quiet librdkafka's own logging of connection failures: the tests assert on the typed errors.
    base.setdefault("client_config_overrides", {"log_level": 0})
    return KafkaSettings(**base)


def kafka_settings(request: pytest.FixtureRequest, listener: str = "PLAINTEXT") -> KafkaSettings:
    """Settings for one listener of the test-bed broker (the `kafka` session fixture)."""
    try:
        kafka = request.getfixturevalue("kafka")
    except pytest.FixtureLookupError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("the kafka test-bed fixture is missing")
        pytest.skip("the kafka test-bed fixture is not available")
    return settings_for(kafka, listener)
