"""The endpoint's settings (`EndpointOptions`: how it serves) and `EndpointSettings`, what the service takes:
those settings resolved against the pipeline's `EndpointConfig` (paths, listen addresses, write-ahead log, circuit
breaker), as `algorun.settings` defines both words.

Limits, TLS files and client credentials are not fields of the API's endpoint config, so they are settings:
environment variables `ALGORUN_ENDPOINT_*` (secrets only from the environment or files), listed in
docs/settings.md. The listen addresses are the config's, overridden by the original's `EP_SERVER_*_LISTEN`
variables, then by the command-line options.

`ALGORUN_ENDPOINT_CREDENTIALS_DIR` (files `bearer-tokens`, `api-keys`: `spec.endpoint.auth`'s Secret) is read
again when its files change; the endpoint refuses to start while it holds no credential (asked for
authentication, it never runs open).

S3 storage for large bodies is read by `algorun.storage.settings.component_settings` (`MC_HOST_algorun`, `AWS_*`,
`ALGORUN_STORAGE_BUCKET`, `ALGORUN_STORAGE_REGION`), as the runner's.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from algorun.api.configs import EndpointConfig
from algorun.api.enums import WalMode
from algorun.api.units import parse_duration, parse_quantity
from algorun.endpoint.auth import Credentials, CredentialsDirectory, secret_lines
from algorun.endpoint.publisher import Limits, WalPolicy
from algorun.settings import ComponentSettings, SettingsError

PREFIX = "ALGORUN_ENDPOINT_"
DEFAULT_WAL_DIR = "/data/wal"
WAL_FILE = "endpoint-wal.db"

__all__ = ["EndpointOptions", "EndpointSettings", "Listen", "SettingsError", "TlsFiles", "build_settings"]


class EndpointOptions(ComponentSettings):
    """How the endpoint serves; every field is an `ALGORUN_ENDPOINT_*` variable (the listen addresses keep the
    original's `EP_SERVER_*_LISTEN` names), the CLI's options win."""

    model_config = SettingsConfigDict(env_prefix=PREFIX)

    http_listen: str = Field(default=":18080", validation_alias="EP_SERVER_HTTP_LISTEN")
    """HTTP listen address, `host:port` (over the config's `server.http.listen`)."""
    grpc_listen: str = Field(default=":18282", validation_alias="EP_SERVER_GRPC_LISTEN")
    """gRPC listen address (over the config's `server.grpc.listen`)."""
    monitoring_listen: str = Field(default=":28080", validation_alias="EP_SERVER_MONITORING_LISTEN")
    """Metrics and health address (over the config's `server.monitoring.listen`)."""
    max_body_bytes: int = Field(default=1_000_000, ge=1)
    """Largest inline message body (413 beyond, unless the path offloads it to storage)."""
    max_upload_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    """Largest body of a `FileReference` path with storage (it goes to S3)."""
    max_in_flight: int = Field(default=20_000, ge=1)
    """Accepted messages awaiting a broker acknowledgement before requests are refused with 429."""
    max_in_flight_bytes: int = Field(default=256 * 1024 * 1024, ge=1)
    """Bytes awaiting a broker acknowledgement before requests are refused with 429."""
    ack_timeout_seconds: float = Field(default=10.0, gt=0, allow_inf_nan=False, validation_alias=PREFIX + "ACK_TIMEOUT")
    """Time to wait for the broker before a delivery counts as failed."""
    tls_cert: str | None = None
    """PEM server certificate: HTTPS and gRPC over TLS (with `tls_key`)."""
    tls_key: str | None = None
    """PEM private key of `tls_cert`."""
    tls_client_ca: str | None = None
    """PEM CA bundle: client certificates signed by it are required (mTLS)."""
    bearer_tokens: SecretStr | None = None
    """Accepted bearer tokens, comma-separated."""
    bearer_tokens_file: Path | None = None
    """A file of accepted bearer tokens, one per line."""
    api_keys: SecretStr | None = None
    """Accepted `X-API-Key` values, comma-separated."""
    api_keys_file: Path | None = None
    """A file of accepted `X-API-Key` values, one per line."""
    credentials_dir: str | None = None
    """A directory with files `bearer-tokens` and `api-keys` (`spec.endpoint.auth`'s Secret), read again when
    they change."""
    log_level: str = "info"
    """debug, info, warning or error."""


@dataclass(frozen=True)
class Listen:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str, what: str) -> Listen:
        """`:18080`, `0.0.0.0:18080`, `127.0.0.1:0` or `[::]:18080`."""
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit() or int(port) > 65535:
            raise SettingsError(f'{what}: "{text}" is not host:port (e.g. ":18080")')
        return cls(host.strip("[]") or "0.0.0.0", int(port))

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class TlsFiles:
    cert: str
    key: str
    client_ca: str | None = None


@dataclass(frozen=True)
class EndpointSettings:
    """The `EndpointOptions` resolved against the config: what the service takes (`build_settings` makes it)."""

    http: Listen
    grpc: Listen
    monitoring: Listen
    max_body_bytes: int
    max_upload_bytes: int
    ack_timeout_s: float
    limits: Limits
    tls: TlsFiles | None
    credentials: Credentials
    credentials_dir: CredentialsDirectory | None
    """Where the credentials are read again from when they change (None: they are fixed at start)."""
    wal_policy: WalPolicy
    wal_file: str | None
    wal_in_memory: bool
    wal_max_bytes: int | None
    breaker_fails: int
    breaker_timeout_s: float
    breaker_requests: int
    breaker_interval_s: float
    resend_rate: int | None
    log_level: str
    grpc_max_message_bytes: int = 4 * 1024 * 1024

    def wal_enabled(self, topics: list[str]) -> bool:
        return self.wal_policy.needs_log(topics)


def _secrets(values: SecretStr | None, path: Path | None, variable: str) -> frozenset[str]:
    """The secrets of a comma-separated variable and of its file (one per line)."""
    found = secret_lines((values.get_secret_value() if values else "").replace(",", "\n"))
    if path:
        try:
            found |= secret_lines(path.read_text())
        except OSError as e:
            raise SettingsError(f"{PREFIX}{variable}_FILE: cannot read {str(path)!r}: {e.strerror}") from e
    return found


def credentials_from_env(env: Mapping[str, str]) -> tuple[Credentials, CredentialsDirectory | None]:
    """The credentials the environment configures (variables, files, a directory); SettingsError when a file
    cannot be read or a credentials directory holds none."""
    return _credentials(EndpointOptions.from_env(env))


def _credentials(options: EndpointOptions) -> tuple[Credentials, CredentialsDirectory | None]:
    fixed = Credentials(
        _secrets(options.bearer_tokens, options.bearer_tokens_file, "BEARER_TOKENS"),
        _secrets(options.api_keys, options.api_keys_file, "API_KEYS"),
    )
    path = options.credentials_dir
    if not path:
        return fixed, None
    directory = CredentialsDirectory(path, fixed)
    try:
        credentials = directory.read()
    except OSError as e:
        raise SettingsError(f"{PREFIX}CREDENTIALS_DIR: cannot read {path!r}: {e.strerror}") from e
    if not credentials.enabled:
        raise SettingsError(
            f"{PREFIX}CREDENTIALS_DIR: no bearer token or API key in {path!r} (files bearer-tokens, api-keys); "
            "the endpoint does not start open when authentication is asked for"
        )
    return credentials, directory


def _existing(path: str, what: str) -> str:
    if not Path(path).is_file():
        raise SettingsError(f"{what}: {path!r} does not exist or is not a file")
    return path


def _tls(options: EndpointOptions) -> TlsFiles | None:
    cert, key, client_ca = options.tls_cert, options.tls_key, options.tls_client_ca
    if cert or key:
        if not (cert and key):
            raise SettingsError(f"TLS needs both {PREFIX}TLS_CERT and {PREFIX}TLS_KEY")
        return TlsFiles(
            _existing(cert, PREFIX + "TLS_CERT"),
            _existing(key, PREFIX + "TLS_KEY"),
            _existing(client_ca, PREFIX + "TLS_CLIENT_CA") if client_ca else None,
        )
    if client_ca:
        raise SettingsError(f"{PREFIX}TLS_CLIENT_CA (mTLS) needs {PREFIX}TLS_CERT and {PREFIX}TLS_KEY")
    return None


def _listen_from_config(config: EndpointConfig) -> dict[str, Any]:
    """The config's listen addresses: the layer under the environment."""
    server = config.server
    found = {
        "http_listen": server and server.http and server.http.listen,
        "grpc_listen": server and server.grpc and server.grpc.listen,
        "monitoring_listen": server and server.monitoring and server.monitoring.listen,
    }
    return {k: v for k, v in found.items() if v}


def build_settings(
    config: EndpointConfig,
    env: Mapping[str, str] | None = None,
    *,
    http_listen: str | None = None,
    grpc_listen: str | None = None,
    monitoring_listen: str | None = None,
    log_level: str | None = None,
) -> EndpointSettings:
    """Settings from the config, then the environment, then explicit overrides (command-line options)."""
    options = EndpointOptions.from_env(
        env,
        lower=_listen_from_config(config),
        http_listen=http_listen,
        grpc_listen=grpc_listen,
        monitoring_listen=monitoring_listen,
        log_level=log_level,
    )
    tls = _tls(options)
    producer = config.producer
    wal = producer.wal if producer else None
    cb = producer.cb if producer else None
    resend = producer.resend if producer else None
    # No `producer.wal` in the config means no log: the operator then renders a Deployment without a volume, and
    # a log on a pod's ephemeral disk would promise a durability it does not have. A `wal` block without a mode
    # is the original's default, `fallback` (the operator gives it a StatefulSet with a volume claim).
    mode = (wal.mode or WalMode.FALLBACK) if wal else WalMode.DISABLE
    wal_dir = (wal.path if wal and wal.path else None) or DEFAULT_WAL_DIR
    in_memory = bool(wal and wal.in_memory)
    wal_file = str(Path(wal_dir) / WAL_FILE)
    if in_memory:
        # Not durable by definition; a private temporary file keeps the same code path (and survives nothing).
        wal_file = str(Path(tempfile.mkdtemp(prefix="algorun-endpoint-wal-")) / WAL_FILE)
    size = wal.size if wal and wal.size else None
    credentials, credentials_dir = _credentials(options)
    return EndpointSettings(
        http=Listen.parse(options.http_listen, "server.http.listen"),
        grpc=Listen.parse(options.grpc_listen, "server.grpc.listen"),
        monitoring=Listen.parse(options.monitoring_listen, "server.monitoring.listen"),
        max_body_bytes=options.max_body_bytes,
        max_upload_bytes=options.max_upload_bytes,
        ack_timeout_s=options.ack_timeout_seconds,
        limits=Limits(max_in_flight=options.max_in_flight, max_in_flight_bytes=options.max_in_flight_bytes),
        tls=tls,
        credentials=credentials,
        credentials_dir=credentials_dir,
        wal_policy=WalPolicy(
            mode=mode,
            always_topics=frozenset(wal.always_topics or []) if wal else frozenset(),
            disable_topics=frozenset(wal.disable_topics or []) if wal else frozenset(),
        ),
        wal_file=wal_file,
        wal_in_memory=in_memory,
        wal_max_bytes=int(parse_quantity(size)) if size else 1024**3,
        breaker_fails=cb.fails if cb and cb.fails else 5,
        breaker_timeout_s=parse_duration(cb.timeout) if cb and cb.timeout else 20.0,
        breaker_requests=cb.requests if cb and cb.requests else 3,
        breaker_interval_s=float(cb.interval) if cb and cb.interval else 0.0,
        resend_rate=resend.rate_limit if resend and resend.rate_limit else None,
        log_level=options.log_level,
    )
