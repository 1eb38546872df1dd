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
    """Headers of the request that delivers `msg` (signature and attempt number are added per attempt).

    The message's headers are read in one pass (a later duplicate wins, as `contract.get` reads them): this runs
    for every delivery, and a scan per header read was a measurable share of a delivery's cost."""
    found = dict(msg.headers)
    trace = _text(found, contract.TRACE_ID) or f"{msg.topic}-{msg.partition}-{msg.offset}"
    parent = _text(found, contract.TRACEPARENT)
    meta = {
        TRACE_ID_HEADER: trace,
        "traceparent": contract.child_traceparent(trace, parent),
        DELIVERY_ID_HEADER: delivery_id(msg),
        TOPIC_HEADER: msg.topic,
        HOOK_HEADER: hook_id,
        HOOK_INPUT_HEADER: input_name,
        DATA_TYPE_HEADER: _DATA_TYPE_TEXT[contract.data_type(_only(found, contract.MESSAGE_DATA_TYPE))],
        TIMESTAMP_HEADER: str(msg.timestamp_ms),
    }
    lowered = _META_LOWER
    params = _text(found, contract.ENDPOINT_PARAMS)
    if params:
        meta[ENDPOINT_PARAMS_HEADER] = params
        lowered = lowered | {ENDPOINT_PARAMS_HEADER.lower()}
    file_name = _text(found, contract.FILE_NAME)
    if file_name:
        meta[FILE_NAME_HEADER] = file_name
        lowered = lowered | {FILE_NAME_HEADER.lower()}
    out: dict[str, str] = {}
    if not any(k.lower() == "content-type" for k in configured):
        out["Content-Type"] = _text(found, contract.CONTENT_TYPE) or DEFAULT_CONTENT_TYPE
    for k, v in configured.items():
        if k.lower() not in lowered:
            out[k] = v
    for k, v in meta.items():
        out[k] = header_safe(v)
    return out


def _text(found: Mapping[str, bytes], name: str) -> str | None:
    value = found.get(name)
    return None if value is None else value.decode("utf-8", "replace")


def _only(found: Mapping[str, bytes], name: str) -> tuple[tuple[str, bytes], ...]:
    value = found.get(name)
    return () if value is None else ((name, value),)


def header_safe(value: str) -> str:
    """Header values cannot carry line breaks or other control characters (they come from message headers that
    any producer could have written, and aiohttp refuses them)."""
    return _CONTROL.sub(" ", value)
