"""What a webhook receives for one Kafka message: the payload as the body, its content type, and the message's
metadata as `X-Algorun-*` headers (pure, so the mapping is tested without a server).

The webhook's own configured headers (the `httpHeaders` string) are sent too. They may set `Content-Type` (the
user said so explicitly), but never override the metadata headers, which receivers rely on to verify,
deduplicate and trace deliveries.
"""

from __future__ import annotations

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


def delivery_id(msg: Message) -> str:
    """Stable across retries and redeliveries: receivers can use it to drop duplicates (at-least-once)."""
    return f"{msg.topic}/{msg.partition}/{msg.offset}"


def trace_id(msg: Message) -> str:
    """The message's traceID; one without (written by a foreign producer) gets a stable one derived from its
    position, so every webhook and every retry of it reports the same id."""
    return contract.trace_id_of(msg.headers) or f"{msg.topic}-{msg.partition}-{msg.offset}"


def request_headers(msg: Message, *, hook_id: str, input_name: str, configured: Mapping[str, str]) -> dict[str, str]:
    """Headers of the request that delivers `msg` (signature and attempt number are added per attempt)."""
    trace = trace_id(msg)
    headers = {"Content-Type": contract.get(msg.headers, contract.CONTENT_TYPE) or DEFAULT_CONTENT_TYPE}
    configured_lower = {k.lower() for k in configured}
    headers = {k: v for k, v in headers.items() if k.lower() not in configured_lower}
    headers.update(configured)
    meta = {
        TRACE_ID_HEADER: trace,
        "traceparent": contract.child_traceparent(trace, contract.get(msg.headers, contract.TRACEPARENT)),
        DELIVERY_ID_HEADER: delivery_id(msg),
        TOPIC_HEADER: msg.topic,
        HOOK_HEADER: hook_id,
        HOOK_INPUT_HEADER: input_name,
        DATA_TYPE_HEADER: contract.data_type(msg.headers).value,
        TIMESTAMP_HEADER: str(msg.timestamp_ms),
    }
    params = contract.get(msg.headers, contract.ENDPOINT_PARAMS)
    if params:
        meta[ENDPOINT_PARAMS_HEADER] = params
    file_name = contract.get(msg.headers, contract.FILE_NAME)
    if file_name:
        meta[FILE_NAME_HEADER] = file_name
    lowered = {k.lower() for k in meta}
    out = {k: v for k, v in headers.items() if k.lower() not in lowered}
    out.update({k: header_safe(v) for k, v in meta.items()})
    return out


def header_safe(value: str) -> str:
    """Header values cannot carry line breaks or other control characters (they come from message headers that
    any producer could have written, and aiohttp refuses them)."""
    return "".join(c if c >= " " and c != "\x7f" else " " for c in value)
