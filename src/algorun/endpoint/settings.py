"""The endpoint's runtime settings: the pipeline's `EndpointConfig` plus what the config does not carry yet.

Limits, TLS files and client credentials are not (yet) fields of the API's endpoint config, so they come from
command-line options or environment variables (secrets only from the environment or files):

| variable | default | meaning |
|---|---|---|
| `ALGORUN_ENDPOINT_MAX_BODY_BYTES` | 1000000 | largest inline message body (413 beyond, unless the path offloads) |
| `ALGORUN_ENDPOINT_MAX_UPLOAD_BYTES` | 67108864 | largest body of a `FileReference` path with storage (goes to S3) |
| `ALGORUN_ENDPOINT_MAX_IN_FLIGHT` | 20000 | accepted messages awaiting an ack before 429 |
| `ALGORUN_ENDPOINT_MAX_IN_FLIGHT_BYTES` | 268435456 | bytes awaiting an ack before 429 |
| `ALGORUN_ENDPOINT_ACK_TIMEOUT` | 10 | seconds to wait for the broker before a delivery counts as failed |
| `ALGORUN_ENDPOINT_TLS_CERT`, `_TLS_KEY` | - | PEM server certificate and key: HTTPS and gRPC over TLS |
| `ALGORUN_ENDPOINT_TLS_CLIENT_CA` | - | PEM CA bundle: require client certificates signed by it (mTLS) |
| `ALGORUN_ENDPOINT_BEARER_TOKENS`, `_BEARER_TOKENS_FILE` | - | bearer tokens (comma-separated / one per line) |
| `ALGORUN_ENDPOINT_API_KEYS`, `_API_KEYS_FILE` | - | accepted `X-API-Key` values |
| `ALGORUN_ENDPOINT_CREDENTIALS_DIR` | - | files `bearer-tokens`, `api-keys` (`spec.endpoint.auth`'s Secret), re-read |
| `EP_SERVER_HTTP_LISTEN`, `EP_SERVER_GRPC_LISTEN`, `EP_SERVER_MONITORING_LISTEN` | config | the original's overrides |

`ALGORUN_ENDPOINT_CREDENTIALS_DIR` is read again when its files change; the endpoint refuses to start while it
holds no credential (asked for authentication, it never runs open).

S3 storage for large bodies is read by `algorun.storage.settings.component_settings` (`MC_HOST_algorun`, `AWS_*`,
`ALGORUN_STORAGE_BUCKET`, `ALGORUN_STORAGE_REGION`), as the runner's.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from algorun.api.configs import EndpointConfig
from algorun.api.enums import WalMode
from algorun.api.units import parse_duration, parse_quantity
from algorun.endpoint.auth import Credentials, CredentialsDirectory, secret_lines
from algorun.endpoint.publisher import Limits, WalPolicy

PREFIX = "ALGORUN_ENDPOINT_"
DEFAULT_WAL_DIR = "/data/wal"
WAL_FILE = "endpoint-wal.db"


class SettingsError(ValueError):
    """A setting that cannot work; the message names the variable or config field."""


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
    http: Listen = field(default_factory=lambda: Listen("0.0.0.0", 18080))
    grpc: Listen = field(default_factory=lambda: Listen("0.0.0.0", 18282))
    monitoring: Listen = field(default_factory=lambda: Listen("0.0.0.0", 28080))
    max_body_bytes: int = 1_000_000
    max_upload_bytes: int = 64 * 1024 * 1024
    ack_timeout_s: float = 10.0
    limits: Limits = field(default_factory=Limits)
    tls: TlsFiles | None = None
    credentials: Credentials = field(default_factory=Credentials)
    credentials_dir: CredentialsDirectory | None = None
    """Where the credentials are read again from when they change (None: they are fixed at start)."""
    wal_policy: WalPolicy = field(default_factory=WalPolicy)
    wal_file: str | None = None
    wal_in_memory: bool = False
    wal_max_bytes: int | None = 1024**3
    breaker_fails: int = 5
    breaker_timeout_s: float = 20.0
    breaker_requests: int = 3
    breaker_interval_s: float = 0.0
    resend_rate: int | None = None
    grpc_max_message_bytes: int = 4 * 1024 * 1024

    def wal_enabled(self, topics: list[str]) -> bool:
        return self.wal_policy.needs_log(topics)


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(PREFIX + name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{PREFIX}{name}={raw!r} is not an integer") from None
    if value < 1:
        raise SettingsError(f"{PREFIX}{name} must be at least 1, not {value}")
    return value


def _secrets(env: Mapping[str, str], name: str) -> frozenset[str]:
    values = secret_lines(env.get(PREFIX + name, "").replace(",", "\n"))
    path = env.get(PREFIX + name + "_FILE")
    if path:
        try:
            values |= secret_lines(Path(path).read_text())
        except OSError as e:
            raise SettingsError(f"{PREFIX}{name}_FILE: cannot read {path!r}: {e.strerror}") from e
    return values


def credentials_from_env(env: Mapping[str, str]) -> tuple[Credentials, CredentialsDirectory | None]:
    """The credentials the environment configures (variables, files, a directory); SettingsError when a file
    cannot be read or a credentials directory holds none."""
    fixed = Credentials(_secrets(env, "BEARER_TOKENS"), _secrets(env, "API_KEYS"))
    path = env.get(PREFIX + "CREDENTIALS_DIR")
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


def build_settings(
    config: EndpointConfig,
    env: Mapping[str, str] | None = None,
    *,
    http_listen: str | None = None,
    grpc_listen: str | None = None,
    monitoring_listen: str | None = None,
) -> EndpointSettings:
    """Settings from the config, then the environment, then explicit overrides (command-line options)."""
    e = os.environ if env is None else env
    server = config.server
    http = http_listen or e.get("EP_SERVER_HTTP_LISTEN") or (server and server.http and server.http.listen) or ":18080"
    grpc = grpc_listen or e.get("EP_SERVER_GRPC_LISTEN") or (server and server.grpc and server.grpc.listen) or ":18282"
    mon = (
        monitoring_listen
        or e.get("EP_SERVER_MONITORING_LISTEN")
        or (server and server.monitoring and server.monitoring.listen)
        or ":28080"
    )
    tls = None
    cert, key = e.get(PREFIX + "TLS_CERT"), e.get(PREFIX + "TLS_KEY")
    client_ca = e.get(PREFIX + "TLS_CLIENT_CA") or None
    if cert or key:
        if not (cert and key):
            raise SettingsError(f"TLS needs both {PREFIX}TLS_CERT and {PREFIX}TLS_KEY")
        tls = TlsFiles(
            _existing(cert, PREFIX + "TLS_CERT"),
            _existing(key, PREFIX + "TLS_KEY"),
            _existing(client_ca, PREFIX + "TLS_CLIENT_CA") if client_ca else None,
        )
    elif client_ca:
        raise SettingsError(f"{PREFIX}TLS_CLIENT_CA (mTLS) needs {PREFIX}TLS_CERT and {PREFIX}TLS_KEY")

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
    credentials, credentials_dir = credentials_from_env(e)
    ack_raw = e.get(PREFIX + "ACK_TIMEOUT")
    try:
        ack_timeout = float(ack_raw) if ack_raw else 10.0
    except ValueError:
        raise SettingsError(f"{PREFIX}ACK_TIMEOUT={ack_raw!r} is not a number of seconds") from None
    return EndpointSettings(
        http=Listen.parse(http, "server.http.listen"),
        grpc=Listen.parse(grpc, "server.grpc.listen"),
        monitoring=Listen.parse(mon, "server.monitoring.listen"),
        max_body_bytes=_int(e, "MAX_BODY_BYTES", 1_000_000),
        max_upload_bytes=_int(e, "MAX_UPLOAD_BYTES", 64 * 1024 * 1024),
        ack_timeout_s=ack_timeout,
        limits=Limits(
            max_in_flight=_int(e, "MAX_IN_FLIGHT", 20_000),
            max_in_flight_bytes=_int(e, "MAX_IN_FLIGHT_BYTES", 256 * 1024 * 1024),
        ),
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
    )
