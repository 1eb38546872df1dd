"""Kafka settings: the chart's auth types map to the right librdkafka security settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from algorun.api.enums import KafkaAuthType
from algorun.bus import AuthType, ConfigError, KafkaSettings, open_bus
from algorun.bus.local.bus import LocalBus


def files(tmp_path: Path) -> dict[str, str]:
    out = {}
    for name in ("ca", "cert", "key"):
        (tmp_path / name).write_text("x")
        out[name] = str(tmp_path / name)
    return out


def test_each_auth_type(tmp_path: Path) -> None:
    f = files(tmp_path)
    assert KafkaSettings(bootstrap_servers="b:9092").client_config()["security.protocol"] == "PLAINTEXT"
    tls = KafkaSettings(bootstrap_servers="b:9093", tls=True, ca_location=f["ca"]).client_config()
    assert (tls["security.protocol"], tls["ssl.ca.location"]) == ("SSL", f["ca"])
    mtls = KafkaSettings(
        bootstrap_servers="b",
        tls=True,
        ca_location=f["ca"],
        auth_type=AuthType.TLS,
        cert_location=f["cert"],
        key_location=f["key"],
    ).client_config()
    assert mtls["ssl.certificate.location"] == f["cert"] and mtls["ssl.key.location"] == f["key"]
    scram = KafkaSettings(
        bootstrap_servers="b", tls=True, auth_type="scram-sha-512", username="u", password="p"
    ).client_config()
    assert scram["security.protocol"] == "SASL_SSL"
    assert scram["sasl.mechanism"] == "SCRAM-SHA-512"  # not SCRAM-SHA-256 (original defect)
    assert (scram["sasl.username"], scram["sasl.password"]) == ("u", "p")
    plain = KafkaSettings(bootstrap_servers="b", auth_type="plain", username="u", password="p").client_config()
    assert (plain["security.protocol"], plain["sasl.mechanism"]) == ("SASL_PLAINTEXT", "PLAIN")


def test_incomplete_or_missing_material_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cert_location"):
        KafkaSettings(bootstrap_servers="b", auth_type=AuthType.TLS)
    with pytest.raises(ValueError, match="username and password"):
        KafkaSettings(bootstrap_servers="b", auth_type=AuthType.PLAIN, username="u")
    with pytest.raises(ConfigError, match="does not exist"):
        KafkaSettings(bootstrap_servers="b", tls=True, ca_location=str(tmp_path / "nope")).client_config()


def test_from_the_original_environment_variables() -> None:
    s = KafkaSettings.from_env(
        {
            "KAFKA_BROKERS": "k:9092",
            "KAFKA_TLS": "true",
            "KAFKA_AUTH_TYPE": "scram-sha-512",
            "KAFKA_AUTH_USERNAME": "user",
            "KAFKA_AUTH_PASSWORD": "pw",
        }
    )
    assert s.tls and s.auth_type is AuthType.SCRAM_SHA_512 and s.username == "user"
    with pytest.raises(ConfigError, match="KAFKA_BROKERS"):
        KafkaSettings.from_env({})


async def test_open_bus_picks_the_backend(tmp_path: Path) -> None:
    bus = open_bus(f"local://{tmp_path}/x.db")
    assert isinstance(bus, LocalBus)
    await bus.close()
    with pytest.raises(ConfigError, match="kafka://"):
        open_bus("redis://x")


def test_one_auth_enum_reads_the_chart_and_cli_spellings() -> None:
    """The chart writes "" for no authentication, the CLI says "none": both are the api's one enum."""
    for spelling in ("", "none", " NONE "):
        env = {"KAFKA_BROKERS": "b:9092", "KAFKA_AUTH_TYPE": spelling}
        assert KafkaSettings.from_env(env).auth_type is AuthType.NONE is KafkaAuthType.NONE
    assert KafkaAuthType(" Scram-SHA-512 ") is KafkaAuthType.SCRAM_SHA_512
    with pytest.raises(ValueError, match="kerberos"):
        KafkaAuthType("kerberos")
