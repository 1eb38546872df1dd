"""Where claim-checked values live: an S3-compatible endpoint, credentials, the bucket, the size threshold.

Two ways in: the original's connection string `http(s)://ACCESS:SECRET@host:port` (env `MC_HOST_algorun`),
whose secret may contain URL-unsafe characters (`/`, `+`, `@`, `:`...) raw or percent-encoded; or the standard
AWS variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT_URL`, `AWS_REGION`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from urllib.parse import unquote

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from algorun.settings import ComponentSettings, SettingsError
from algorun.storage.errors import StorageConfigError

DEFAULT_THRESHOLD = 900 * 1024
"""Under librdkafka's default `message.max.bytes` (1,000,000), with room for the key and headers: a value that
is not offloaded must still fit in one Kafka message."""
_HOSTPORT = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")


class StorageSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint_url: str | None = Field(default=None, description="None means AWS S3 itself")
    access_key: str | None = None
    secret_key: SecretStr | None = None
    region: str = "us-east-1"
    bucket: str = ""
    threshold: int = Field(default=DEFAULT_THRESHOLD, ge=0, description="values larger than this are offloaded")
    part_size: int = Field(default=8 * 1024 * 1024, ge=5 * 1024 * 1024, description="multipart upload part")

    @property
    def host(self) -> str:
        """The `host` written into FileReferences (informational, as in the original)."""
        if not self.endpoint_url:
            return "s3.amazonaws.com"
        return self.endpoint_url.split("://", 1)[-1].rstrip("/")

    @classmethod
    def from_connection_string(cls, conn: str, **fields: object) -> StorageSettings:
        endpoint, access, secret = parse_connection_string(conn)
        return cls(endpoint_url=endpoint, access_key=access, secret_key=SecretStr(secret), **fields)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **fields: object) -> StorageSettings:
        e = os.environ if env is None else env
        if conn := e.get("MC_HOST_algorun"):
            return cls.from_connection_string(conn, **fields)
        access, secret = e.get("AWS_ACCESS_KEY_ID"), e.get("AWS_SECRET_ACCESS_KEY")
        # `fields` win over the environment (a caller's explicit region, say), each given once.
        values: dict[str, object] = {
            "endpoint_url": e.get("AWS_ENDPOINT_URL_S3") or e.get("AWS_ENDPOINT_URL") or None,
            "access_key": access or None,
            "secret_key": SecretStr(secret) if secret else None,
            "region": e.get("AWS_REGION") or e.get("AWS_DEFAULT_REGION") or "us-east-1",
        }
        return cls.model_validate({**values, **fields})


def parse_connection_string(conn: str) -> tuple[str, str, str]:
    """`http(s)://ACCESS:SECRET@host[:port][/]` -> (endpoint URL, access key, secret key).

    Split by hand, not by a URL parser: secrets are often not URL-encoded. The host is after the *last* `@`,
    the access key before the *first* `:`; percent-escapes in either key are decoded (`%40` is `@`).
    """
    scheme, sep, rest = conn.strip().partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        raise StorageConfigError("storage connection string must look like http(s)://ACCESS:SECRET@host:port")
    userinfo, at, hostport = rest.rpartition("@")
    hostport = hostport.rstrip("/")
    if not at or not userinfo:
        raise StorageConfigError("storage connection string has no ACCESS:SECRET@ part")
    if not _HOSTPORT.match(hostport):
        raise StorageConfigError(
            f"storage connection string: {hostport!r} is not host[:port] (no path, query or fragment)"
        )
    access, colon, secret = userinfo.partition(":")
    if not colon or not access or not secret:
        raise StorageConfigError("storage connection string needs both ACCESS and SECRET (ACCESS:SECRET@)")
    return f"{scheme.lower()}://{hostport}", unquote(access), unquote(secret)


STORAGE_VARIABLES = ("MC_HOST_algorun", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID")
"""Any of these set means a component has storage."""


class StorageOptions(ComponentSettings):
    """A pipeline component's own storage settings, over what the connection variables say."""

    model_config = SettingsConfigDict(env_prefix="ALGORUN_STORAGE_")

    bucket: str | None = None
    """The bucket (None: the original's lower(`{owner}.{name}`))."""
    region: str | None = None
    """The region (None: `AWS_REGION`, else us-east-1)."""
    threshold_bytes: int = Field(default=DEFAULT_THRESHOLD, ge=0, validation_alias="ALGORUN_STORAGE_THRESHOLD")
    """Values larger than this are claim-checked (written to storage, a reference sent instead)."""


def component_settings(env: Mapping[str, str], owner: str, name: str) -> StorageSettings | None:
    """A pipeline component's storage (the runner's and the endpoint's), from its environment; None when no
    storage is configured there. `StorageOptions` (`ALGORUN_STORAGE_BUCKET`, `_REGION`, `_THRESHOLD`) override
    the bucket, the region and the size over which values are claim-checked."""
    if not any(env.get(v) for v in STORAGE_VARIABLES):
        return None
    try:
        options = StorageOptions.from_env(env)
    except SettingsError:  # the threshold is the one setting here that can be refused
        raise StorageConfigError(
            f"ALGORUN_STORAGE_THRESHOLD: not a number of bytes: {env.get('ALGORUN_STORAGE_THRESHOLD')!r}"
        ) from None
    settings = StorageSettings.from_env(env, bucket=options.bucket or f"{owner}.{name}".lower())
    update: dict[str, object] = {"threshold": options.threshold_bytes}
    if options.region:
        update["region"] = options.region
    return settings.model_copy(update=update)
