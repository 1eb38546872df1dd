"""Endpoint settings: what the operator's config and the environment turn into (listen addresses, the log, S3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from algorun.api.configs import EndpointConfig, EndpointPathConfig, Identity
from algorun.api.enums import WalMode
from algorun.api.pipeline import CircuitBreaker, EndpointServer, Listen, Producer, WriteAheadLog
from algorun.bus import KafkaSettings
from algorun.endpoint.service import endpoint_kafka_settings
from algorun.endpoint.settings import SettingsError, build_settings

IDENT = Identity(deployment_owner="Acme", deployment_name="Orders", pipeline_owner="acme", pipeline_name="p")


def _config(producer: Producer | None = None, server: EndpointServer | None = None) -> EndpointConfig:
    return EndpointConfig(
        identity=IDENT, paths=[EndpointPathConfig(name="in", topic="t")], producer=producer, server=server
    )


def test_without_a_wal_block_there_is_no_log_as_the_operator_gives_no_volume() -> None:
    settings = build_settings(_config(), {})
    assert settings.wal_policy.mode is WalMode.DISABLE
    assert not settings.wal_enabled(["t"])


def test_a_wal_block_without_a_mode_is_the_original_fallback_at_its_path(tmp_path: Path) -> None:
    settings = build_settings(_config(Producer(wal=WriteAheadLog(path=str(tmp_path), size="10Mi"))), {})
    assert settings.wal_policy.mode is WalMode.FALLBACK
    assert settings.wal_file == str(tmp_path / "endpoint-wal.db")
    assert settings.wal_max_bytes == 10 * 1024 * 1024


def test_listen_addresses_config_then_environment_then_options() -> None:
    config = _config(server=EndpointServer(http=Listen(listen=":9000")))
    assert build_settings(config, {}).http.port == 9000
    assert build_settings(config, {"EP_SERVER_HTTP_LISTEN": "127.0.0.1:9001"}).http.port == 9001
    assert build_settings(config, {"EP_SERVER_HTTP_LISTEN": ":9001"}, http_listen="[::1]:9002").http.host == "::1"
    assert build_settings(config, {}).grpc.port == 18282
    assert build_settings(config, {}).monitoring.port == 28080


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"ALGORUN_ENDPOINT_MAX_BODY_BYTES": "lots"}, "MAX_BODY_BYTES"),
        ({"ALGORUN_ENDPOINT_MAX_IN_FLIGHT": "0"}, "MAX_IN_FLIGHT"),
        ({"ALGORUN_ENDPOINT_TLS_CERT": "/nonexistent.crt"}, "TLS_KEY"),
        ({"ALGORUN_ENDPOINT_TLS_CLIENT_CA": "/ca.crt"}, "TLS_CERT"),
        ({"ALGORUN_ENDPOINT_ACK_TIMEOUT": "soon"}, "ACK_TIMEOUT"),
    ],
)
def test_settings_that_cannot_work_are_refused_naming_the_variable(env: dict[str, str], needle: str) -> None:
    with pytest.raises(SettingsError, match=needle):
        build_settings(_config(), env)


def test_bad_listen_address_names_the_field() -> None:
    with pytest.raises(SettingsError, match=r"server\.http\.listen"):
        build_settings(_config(), {}, http_listen="nowhere")


def test_pipeline_kafka_params_tune_the_producer_but_never_the_ack_timeout() -> None:
    settings = build_settings(_config(), {})
    kafka = KafkaSettings(bootstrap_servers="b:9092")
    params = {"linger.ms": "7", "message.timeout.ms": "999999"}
    producer = endpoint_kafka_settings(kafka, settings, params).producer_config
    assert producer["linger.ms"] == "7"
    assert producer["message.timeout.ms"] == max(1000, int(settings.ack_timeout_s * 1000))


def test_the_endpoint_producer_lingers_less_than_the_bus_default_unless_the_pipeline_says_otherwise() -> None:
    settings = build_settings(_config(), {})
    kafka = KafkaSettings(bootstrap_servers="b:9092")
    assert endpoint_kafka_settings(kafka, settings).producer_config["linger.ms"] == 3
    assert endpoint_kafka_settings(kafka, settings, {"linger.ms": "20"}).producer_config["linger.ms"] == "20"


def test_the_circuit_breaker_takes_every_cb_setting_with_the_originals_defaults() -> None:
    defaults = build_settings(_config(), {})
    assert (defaults.breaker_fails, defaults.breaker_timeout_s, defaults.breaker_requests) == (5, 20.0, 3)
    assert defaults.breaker_interval_s == 0.0
    cb = CircuitBreaker(fails=2, timeout="1m", requests=4, interval=90)
    settings = build_settings(_config(Producer(cb=cb)), {})
    assert (settings.breaker_fails, settings.breaker_timeout_s, settings.breaker_requests) == (2, 60.0, 4)
    assert settings.breaker_interval_s == 90.0


def test_a_negative_cb_interval_is_refused_by_the_model() -> None:
    with pytest.raises(ValueError, match="interval"):
        Producer.model_validate({"cb": {"interval": -1}})


def test_a_credentials_directory_must_hold_a_credential(tmp_path: Path) -> None:
    env = {"ALGORUN_ENDPOINT_CREDENTIALS_DIR": str(tmp_path)}
    with pytest.raises(SettingsError, match=r"no bearer token or API key .* does not start open"):
        build_settings(_config(), env)
    with pytest.raises(SettingsError, match="no bearer token or API key"):
        build_settings(_config(), {"ALGORUN_ENDPOINT_CREDENTIALS_DIR": str(tmp_path / "not-mounted")})
    (tmp_path / "bearer-tokens").write_text("# rotated 2026-11\n\ntoken-1\ntoken-2\n")
    settings = build_settings(_config(), {**env, "ALGORUN_ENDPOINT_API_KEYS": "key-a, key-b"})
    assert settings.credentials.bearer_tokens == {"token-1", "token-2"}
    assert settings.credentials.api_keys == {"key-a", "key-b"}  # the environment's are kept beside the files'
    assert settings.credentials_dir is not None
