"""What a webhook receives for one Kafka message: the payload as the body, its content type, and the message's
metadata as `X-Algorun-*` headers (pure, so the mapping is tested without a server).

The webhook's own configured headers (the `httpHeaders` string) are sent too. They may set `Content-Type` (the
user said so explicitly), but never override the metadata headers, which receivers rely on to verify,
deduplicate and trace deliveries.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from algorun.bus import contract
from algorun.bus.types import Message

TRACE_ID_HEADER = "X-Algorun-Trace-Id"
DELIVERY_ID_HEADER = "X-Algorun-Delivery-Id"
TOPIC_HEADER = "X-Algorun-Topic"
HOOK_HEADER = "X-Algorun-Hook"
HOOK_INPUT_HEADER = "X-Algorun-Hook-Input"
ENDPOINT_PARAMS_HEADER = "X-Algorun-Endpoint-Params"
FILE_NAME_HEADER = "X-Algorun-File-Name"
DATA_TYPE_HEADER = "X-Algorun-Message-Data-Type"
TIMESTAMP_HEADER = "X-Algorun-Timestamp"
DEFAULT_CONTENT_TYPE = "application/octet-stream"
# Read per delivery: the enum's `.value` and the set of the metadata names are looked up, not rebuilt.
_DATA_TYPE_TEXT = {t: t.value for t in contract.MessageDataType}
_META_LOWER = frozenset(
    h.lower()
    for h in (
        TRACE_ID_HEADER,
        "traceparent",
        DELIVERY_ID_HEADER,
        TOPIC_HEADER,
        HOOK_HEADER,
        HOOK_INPUT_HEADER,
        DATA_TYPE_HEADER,
        TIMESTAMP_HEADER,
    )
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def delivery_id(msg: Message) -> str:
    """Stable across retries and redeliveries: receivers can use it to drop duplicates (at-least-once)."""
    return f"{msg.topic}/{msg.partition}/{msg.offset}"


def trace_id(msg: Message) -> str:
    """The message's traceID; one without (written by a foreign producer) gets a stable one derived from its
    position, so every webhook and every retry of it reports the same id."""
    return contract.trace_id_of(msg.headers) or f"{msg.topic}-{msg.partition}-{msg.offset}"


def request_headers(msg: Message, *, hook_id: str, input_name: str, configured: Mapping[str, str]) -> dict[str, str]:
    """Headers of the request that delivers `msg` (signature and attempt number are added per attempt): what
    `HookHeaders.of` gives, for a one-off call."""
    return HookHeaders(hook_id=hook_id, input_name=input_name, configured=configured).of(msg)


class HookHeaders:
    """One webhook's request headers, built once per webhook with only the per-message values set per message.

    What depends on the webhook alone (its id, its input, its configured headers with the metadata names dropped)
    is settled here; `of` reads the message's headers in one pass (a later duplicate wins, as `contract.get` reads
    them) and sets the rest. This runs for every delivery, so `benchmarks/hooks.py` counts every step of it."""

    __slots__ = ("_configured", "_hook", "_input", "_overridable", "_sets_type", "_topics")

    def __init__(self, *, hook_id: str, input_name: str, configured: Mapping[str, str]) -> None:
        self._hook = header_safe(hook_id)
        self._input = header_safe(input_name)
        self._sets_type = any(k.lower() == "content-type" for k in configured)
        self._configured = {k: v for k, v in configured.items() if k.lower() not in _META_LOWER}
        # Configured names that a message's own parameters or file name replace, when the message has them.
        self._overridable = {
            name.lower(): [k for k in self._configured if k.lower() == name.lower()]
            for name in (ENDPOINT_PARAMS_HEADER, FILE_NAME_HEADER)
        }
        self._topics: dict[str, str] = {}

    def of(self, msg: Message) -> dict[str, str]:
        """The headers of the request that delivers `msg`."""
        found = dict(msg.headers)
        raw_trace = found.get(contract.TRACE_ID)
        if raw_trace is None:
            trace = f"{msg.topic}-{msg.partition}-{msg.offset}"
            raw_trace = trace.encode()
        else:
            trace = raw_trace.decode("utf-8", "replace")
        topic = self._topics.get(msg.topic)
        if topic is None:
            topic = self._topics[msg.topic] = header_safe(msg.topic)
        out: dict[str, str] = {}
        if not self._sets_type:
            out["Content-Type"] = _text(found, contract.CONTENT_TYPE) or DEFAULT_CONTENT_TYPE
        out.update(self._configured)
        out[TRACE_ID_HEADER] = header_safe(trace)
        # Its bytes are a well-formed traceparent (hex digits and dashes) on every path, so it needs no cleaning.
        out["traceparent"] = contract.child_traceparent_raw(trace, found.get(contract.TRACEPARENT), raw_trace).decode()
        out[DELIVERY_ID_HEADER] = f"{topic}/{msg.partition}/{msg.offset}"
        out[TOPIC_HEADER] = topic
        out[HOOK_HEADER] = self._hook
        out[HOOK_INPUT_HEADER] = self._input
        out[DATA_TYPE_HEADER] = _DATA_TYPE_TEXT[contract.data_type(_only(found, contract.MESSAGE_DATA_TYPE))]
        out[TIMESTAMP_HEADER] = str(msg.timestamp_ms)
        params = _text(found, contract.ENDPOINT_PARAMS)
        if params:
            self._override(out, ENDPOINT_PARAMS_HEADER, params)
        file_name = _text(found, contract.FILE_NAME)
        if file_name:
            self._override(out, FILE_NAME_HEADER, file_name)
        return out

    def _override(self, out: dict[str, str], name: str, value: str) -> None:
        for configured in self._overridable[name.lower()]:
            del out[configured]
        out[name] = header_safe(value)


def _text(found: Mapping[str, bytes], name: str) -> str | None:
    value = found.get(name)
    return None if value is None else value.decode("utf-8", "replace")


def _only(found: Mapping[str, bytes], name: str) -> tuple[tuple[str, bytes], ...]:
    value = found.get(name)
    return () if value is None else ((name, value),)


def header_safe(value: str) -> str:
    """Header values cannot carry line breaks or other control characters (they come from message headers that
    any producer could have written, and aiohttp refuses them). A printable string has none: kept as it is."""
    return value if value.isprintable() else _CONTROL.sub(" ", value)
