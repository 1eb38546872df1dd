"""How to reach a Kafka cluster: brokers and security, as one model covering the chart's auth types.

`KafkaSettings` is what a client is built from; `KafkaOptions` is the settings model of the variables the chart and
the operator set for every pipeline component (`KAFKA_BROKERS`, `KAFKA_TLS`, `KAFKA_AUTH_*`: the original
runtime's names), read by `KafkaSettings.from_env`.

`auth_type` takes the chart's values (`tls` = mutual TLS, `scram-sha-512`, `plain`; `none` by default); `tls`
turns on TLS to the brokers (verified against `ca_location`). SASL runs over TLS when `tls` is set
(`SASL_SSL`), else in clear (`SASL_PLAINTEXT`). `scram-sha-512` is the SCRAM-SHA-512 mechanism with the
username/password fields as credentials (docs/compat.md, Kafka security).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import SettingsConfigDict

from algorun.api.enums import KafkaAuthType
from algorun.bus.errors import ConfigError
from algorun.settings import ComponentSettings, SettingsError

AuthType = KafkaAuthType
"""The api's enum ("" or "none" mean no authentication); the alias keeps `algorun.bus.AuthType` importable."""


class KafkaOptions(ComponentSettings):
    """The Kafka variables of a pipeline component, each under its original runtime's name."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_")

    brokers: str = ""
    """host:port[,host:port...] of the brokers ('': none configured)."""
    tls: bool = False
    """TLS to the brokers."""
    tls_ca_location: str | None = None
    """CA bundle that signed the brokers' certificates."""
    auth_type: KafkaAuthType = KafkaAuthType.NONE
    """`tls` (mutual TLS), `scram-sha-512`, `plain`, or none."""
    auth_tls_user_location: str | None = None
    """Client certificate (auth type tls)."""
    auth_tls_key_location: str | None = None
    """Client private key (auth type tls)."""
    auth_username: str | None = None
    """SASL username (scram-sha-512, plain)."""
    auth_password: SecretStr | None = None
    """SASL password (scram-sha-512, plain)."""


class KafkaSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    bootstrap_servers: str = Field(description="host:port[,host:port...]")
    tls: bool = False
    ca_location: str | None = Field(default=None, description="CA bundle that signed the brokers' certificates")
    auth_type: KafkaAuthType = KafkaAuthType.NONE
    cert_location: str | None = Field(default=None, description="client certificate (auth_type tls)")
    key_location: str | None = Field(default=None, description="client private key (auth_type tls)")
    username: str | None = None
    password: SecretStr | None = None
    client_id: str = "algorun"
    producer_config: dict[str, str | int | float | bool] = Field(default_factory=dict)
    consumer_config: dict[str, str | int | float | bool] = Field(default_factory=dict)
    client_config_overrides: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="raw librdkafka settings applied last, for every client"
    )

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if not self.bootstrap_servers.strip():
            raise ValueError("bootstrap_servers is empty")
        if self.auth_type is KafkaAuthType.TLS and not (self.cert_location and self.key_location):
            raise ValueError("auth_type tls needs cert_location and key_location (the client certificate)")
        if self.auth_type in (KafkaAuthType.SCRAM_SHA_512, KafkaAuthType.PLAIN) and not (
            self.username and self.password
        ):
            raise ValueError(f"auth_type {self.auth_type.value} needs username and password")
        return self

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> KafkaSettings:
        """From the original runtime's environment variables (`KafkaOptions`: KAFKA_BROKERS, KAFKA_TLS,
        KAFKA_AUTH_*...)."""
        try:
            options = KafkaOptions.from_env(os.environ if env is None else env)
        except SettingsError as err:
            raise ConfigError(f"Kafka settings from the environment: {err}") from err
        if not options.brokers:
            raise ConfigError("KAFKA_BROKERS is not set (host:port of the Kafka brokers)")
        try:
            return cls(
                bootstrap_servers=options.brokers,
                tls=options.tls,
                ca_location=options.tls_ca_location,
                auth_type=options.auth_type,
                cert_location=options.auth_tls_user_location,
                key_location=options.auth_tls_key_location,
                username=options.auth_username,
                password=options.auth_password,
            )
        except ValidationError as err:
            reasons = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in err.errors())
            raise ConfigError(f"Kafka settings from the environment: {reasons}") from err

    def client_config(self) -> dict[str, str | int | float | bool]:
        """librdkafka settings shared by producers, consumers and the admin client.

        Missing certificate files are an error here, not a silent downgrade to no TLS (an original defect).
        """
        conf: dict[str, str | int | float | bool] = {
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": self.client_id,
        }
        ssl = self.tls or self.auth_type is KafkaAuthType.TLS
        if self.auth_type in (KafkaAuthType.SCRAM_SHA_512, KafkaAuthType.PLAIN):
            conf["security.protocol"] = "SASL_SSL" if ssl else "SASL_PLAINTEXT"
            conf["sasl.mechanism"] = "SCRAM-SHA-512" if self.auth_type is KafkaAuthType.SCRAM_SHA_512 else "PLAIN"
            conf["sasl.username"] = self.username or ""
            conf["sasl.password"] = self.password.get_secret_value() if self.password else ""
        elif ssl:
            conf["security.protocol"] = "SSL"
        else:
            conf["security.protocol"] = "PLAINTEXT"
        if ssl:
            if self.ca_location:
                conf["ssl.ca.location"] = _existing(self.ca_location, "ca_location")
            if self.auth_type is KafkaAuthType.TLS:
                conf["ssl.certificate.location"] = _existing(self.cert_location or "", "cert_location")
                conf["ssl.key.location"] = _existing(self.key_location or "", "key_location")
        conf.update(self.client_config_overrides)
        return conf


def _existing(path: str, field: str) -> str:
    if not Path(path).is_file():
        raise ConfigError(f"Kafka settings: {field} {path!r} does not exist or is not a file")
    return path
