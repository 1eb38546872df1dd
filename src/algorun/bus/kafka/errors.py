"""Translate librdkafka errors into the bus's typed errors, with a message that names what and where."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException

from algorun.bus.errors import (
    AuthenticationFailed,
    BrokerUnreachable,
    BusError,
    MessageTooLarge,
    NotAuthorized,
    ProduceFailed,
    TopicExists,
    UnknownTopic,
)

E = KafkaError
_AUTH = {E._AUTHENTICATION, E.SASL_AUTHENTICATION_FAILED, E._SSL, E.UNSUPPORTED_SASL_MECHANISM}
_UNREACHABLE = {E._TRANSPORT, E._ALL_BROKERS_DOWN, E._RESOLVE, E._TIMED_OUT, E._MSG_TIMED_OUT}
_UNKNOWN_TOPIC = {E._UNKNOWN_TOPIC, E.UNKNOWN_TOPIC_OR_PART, E._UNKNOWN_PARTITION}
_TOO_LARGE = {E.MSG_SIZE_TOO_LARGE, E.RECORD_LIST_TOO_LARGE}
_NOT_AUTHORIZED = {
    E.TOPIC_AUTHORIZATION_FAILED,
    E.GROUP_AUTHORIZATION_FAILED,
    E.CLUSTER_AUTHORIZATION_FAILED,
    E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
}


_TLS_REJECTED = ("alert bad certificate", "certificate verify failed", "certificate required", "unknown ca")


def is_auth_error(err: KafkaError) -> bool:
    """Wrong credentials or certificates. TLS rejections arrive as transport errors, so read their text."""
    if err.code() in _AUTH:
        return True
    text = (err.str() or "").lower()
    return err.code() == E._TRANSPORT and any(marker in text for marker in _TLS_REJECTED)


def translate(err: KafkaError | KafkaException | BaseException, where: str) -> BusError:
    """A typed `BusError` for a librdkafka error; `where` says what we were doing (and on which brokers)."""
    if isinstance(err, KafkaException) and err.args and isinstance(err.args[0], KafkaError):
        err = err.args[0]
    if not isinstance(err, KafkaError):
        return BusError(f"{where}: {err}")
    code = err.code()
    text = f"{where}: {err.str()} ({err.name()})"
    if is_auth_error(err):
        return AuthenticationFailed(f"{text}: check the security protocol, CA, client certificate or SASL credentials")
    if code in _NOT_AUTHORIZED:
        return NotAuthorized(text)
    if code in _UNKNOWN_TOPIC:
        return UnknownTopic(text)
    if code == E.TOPIC_ALREADY_EXISTS:
        return TopicExists(text)
    if code in _TOO_LARGE:
        return MessageTooLarge(f"{text}: send large values through the claim check (algorun.storage)")
    if code in _UNREACHABLE:
        return BrokerUnreachable(f"{text}: is the broker running and reachable?")
    retriable = bool(err.retriable()) and not err.fatal()
    return (
        ProduceFailed(text, retriable=retriable) if where.startswith("produce") else BusError(text, retriable=retriable)
    )
