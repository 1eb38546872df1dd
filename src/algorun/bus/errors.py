"""Typed errors of the data plane, so callers can tell "retry later" from "fix your settings".

Every error says what failed and where (broker address, topic), never just a client error code.
"""

from __future__ import annotations


class BusError(Exception):
    """Base of every data-plane error. `retriable` means trying the same operation again may succeed."""

    retriable: bool = False

    def __init__(self, message: str, *, retriable: bool | None = None) -> None:
        super().__init__(message)
        if retriable is not None:
            self.retriable = retriable


class BrokerUnreachable(BusError):
    """No broker answered (wrong address, broker down, network). Usually transient."""

    retriable = True


class AuthenticationFailed(BusError):
    """The broker refused our identity: wrong credentials, certificate or security protocol."""


class NotAuthorized(BusError):
    """Authenticated, but an ACL forbids this operation on this topic or group."""


class UnknownTopic(BusError):
    """The topic does not exist (and the backend does not create topics on first use)."""


class TopicExists(BusError):
    """create_topics(exist_ok=False) found the topic already there."""


class MessageTooLarge(BusError):
    """The value exceeds the broker's limit: send it through the claim check (algorun.storage) instead."""


class ProduceFailed(BusError):
    """The broker did not acknowledge a message; it may or may not be stored. See `retriable`."""


class TransactionError(BusError):
    """A transaction could not commit; abort it and redo the work (`retriable`), or the producer is fenced."""


class BusClosed(BusError):
    """The producer or consumer was closed while the operation was pending."""


class ConfigError(BusError):
    """Settings or a bus URL that cannot work (unknown scheme, missing certificate file, ...)."""
