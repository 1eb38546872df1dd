"""Pick a backend from a URL or settings: `kafka://host:port[,host:port]` or `local:///path/to/log.db`."""

from __future__ import annotations

from urllib.parse import urlsplit

from algorun.bus.errors import ConfigError
from algorun.bus.interface import Bus
from algorun.bus.settings import KafkaSettings


def open_bus(target: str | KafkaSettings) -> Bus:
    """A `Bus` for `target`. Kafka security (TLS, SASL) needs `KafkaSettings`; a URL means no security.

    `local:` URLs take `?synchronous=full` to fsync every commit (power-loss safe) instead of the default
    `normal` (safe against process crashes, which is what a local run needs).
    """
    if isinstance(target, KafkaSettings):
        from algorun.bus.kafka import KafkaBus

        return KafkaBus(target)
    scheme = urlsplit(target).scheme
    if scheme == "kafka":
        from algorun.bus.kafka import KafkaBus

        servers = target.split("://", 1)[1].strip("/")
        if not servers:
            raise ConfigError(f"bus URL {target!r} names no broker (kafka://host:port)")
        return KafkaBus(KafkaSettings(bootstrap_servers=servers))
    if scheme == "local":
        from algorun.bus.local.bus import LocalBus

        return LocalBus.from_url(target)
    raise ConfigError(f"bus URL {target!r}: use kafka://host:port or local:///path/to/log.db")
