"""The message contract: header names and value formats shared with the original Algo.Run, and our additions.

Pure functions only. The names and formats are kept so that existing producers and consumers interoperate
(docs/compat.md, "Message contract"), and the rules each message follows are set here, in one place:

- `messageDataType` is set on *every* hop, so an algo knows whether a payload is a FileReference;
- outputs inherit their input's headers (`traceID`, `contentType`, `endpointParams`, custom headers);
- every message carries a W3C `traceparent` whose trace-id is the `traceID`, so one request can be followed;
- dead letters carry the failure (`errorMessage`, `errorType`, where it came from).

The message key is the traceID, so every part of one trace lands on one partition.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import time
from collections.abc import Iterable, Mapping
from enum import StrEnum
from random import getrandbits as _getrandbits

from algorun.bus.types import Headers

# Original header names (case-sensitive, values are UTF-8 strings).
TRACE_ID = "traceID"
RUN = "run"
CONTENT_TYPE = "contentType"
ENDPOINT_PARAMS = "endpointParams"
FILE_NAME = "fileName"
MESSAGE_DATA_TYPE = "messageDataType"
RETRY_STEP_INDEX = "retryStepIndex"
RETRY_NUM = "retryNum"
RETRY_TIMESTAMP = "retryTimestamp"
# Added by algorun.
TRACEPARENT = "traceparent"
ERROR_MESSAGE = "errorMessage"
ERROR_TYPE = "errorType"
ERROR_TOPIC = "errorTopic"
ERROR_PARTITION = "errorPartition"
ERROR_OFFSET = "errorOffset"
ERROR_TIMESTAMP = "errorTimestamp"
ERROR_COMPONENT = "errorComponent"
ERROR_VALUE_OMITTED = "errorValueOmitted"
"""On a dead letter written without its value (the value plus error headers was over the broker's size limit): the
value's size. The input is still at errorTopic/errorPartition/errorOffset while its topic retains it."""

RETRY_HEADERS = frozenset({RETRY_STEP_INDEX, RETRY_NUM, RETRY_TIMESTAMP})
ERROR_HEADERS = frozenset(
    {
        ERROR_MESSAGE,
        ERROR_TYPE,
        ERROR_TOPIC,
        ERROR_PARTITION,
        ERROR_OFFSET,
        ERROR_TIMESTAMP,
        ERROR_COMPONENT,
        ERROR_VALUE_OMITTED,
    }
)
PER_HOP_HEADERS = frozenset({MESSAGE_DATA_TYPE, FILE_NAME, TRACEPARENT, RUN}) | RETRY_HEADERS | ERROR_HEADERS
"""Headers that describe one message, not the request: an output never inherits them from its input."""

MAX_ERROR_MESSAGE = 4096


class MessageDataType(StrEnum):
    """How a value travels: in the message (`Embedded`) or as FileReference JSON pointing to storage."""

    EMBEDDED = "Embedded"
    FILE_REFERENCE = "FileReference"


_DATA_TYPE_VALUES = {t: t.value.encode() for t in MessageDataType}  # Enum.value is a slow property


# ---- reading ----


def get(headers: Iterable[tuple[str, bytes]], name: str) -> str | None:
    """The last value of `name` as text (Kafka: a later duplicate wins), or None when absent."""
    found: bytes | None = None
    for k, v in headers:
        if k == name:
            found = v
    return None if found is None else found.decode("utf-8", "replace")


_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
RUN_TRUE_RAW = frozenset(v.encode() for v in _GO_TRUE)
"""`parse_run`'s true spellings as raw header values, for a caller that reads headers without decoding them."""


def parse_run(value: str | None) -> bool:
    """The original's `run` parsing: absent is true; Go ParseBool's true spellings are true; else false."""
    return True if value is None else value in _GO_TRUE


def data_type(headers: Iterable[tuple[str, bytes]]) -> MessageDataType:
    """`FileReference` only when the header says so exactly; anything else (or nothing) is Embedded."""
    return (
        MessageDataType.FILE_REFERENCE
        if get(headers, MESSAGE_DATA_TYPE) == MessageDataType.FILE_REFERENCE
        else MessageDataType.EMBEDDED
    )


def _int(value: str | None) -> int:
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


def retry_state(headers: Iterable[tuple[str, bytes]]) -> tuple[int, int, int | None]:
    """(retryStepIndex, retryNum, retryTimestamp in Unix seconds or None); zeros when absent or malformed."""
    hs = list(headers)
    ts = get(hs, RETRY_TIMESTAMP)
    try:
        timestamp: int | None = int(ts) if ts is not None else None
    except ValueError:
        timestamp = None
    return _int(get(hs, RETRY_STEP_INDEX)), _int(get(hs, RETRY_NUM)), timestamp


# ---- ids ----


def new_trace_id() -> str:
    """A traceID in the original's format: UUID4 as 32 lower-case hex digits, no dashes.

    Built from 16 random bytes with the version and variant bits set, as `uuid.uuid4()` does, without the UUID
    object: the endpoint makes one per request (`benchmarks/endpoint.py`)."""
    b = bytearray(os.urandom(16))
    b[6] = b[6] & 0x0F | 0x40  # version 4
    b[8] = b[8] & 0x3F | 0x80  # RFC 4122 variant
    return b.hex()


def message_key(trace_id: str) -> bytes:
    """The key of every message of a trace, so its parts stay on one partition (and in order)."""
    return trace_id.encode()


_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def w3c_trace_id(trace_id: str) -> str:
    """The W3C trace-id for a traceID: itself when 32 hex digits (dashes ignored), else a hash of it."""
    compact = trace_id.replace("-", "").lower()
    if _HEX32.match(compact) and compact != "0" * 32:
        return compact
    return hashlib.sha256(trace_id.encode()).hexdigest()[:32]


def child_traceparent(trace_id: str, parent: str | None = None) -> str:
    """A `traceparent` for a new hop of `trace_id`: same trace, new span id, the sampled flag of `parent`."""
    return child_traceparent_raw(trace_id, None if parent is None else parent.encode()).decode()


_PARENT = re.compile(rb"00-([0-9a-f]{32})-[0-9a-f]{16}-([0-9a-f]{2})")
# `_PARENT` as a byte shape: lowercase hex digits map to "x", "-" to itself, every other byte to "?".
_BYTE_CLASS = bytes(ord("x") if chr(b) in "0123456789abcdef" else b if b == ord("-") else ord("?") for b in range(256))
_PARENT_SHAPE = b"xx-" + b"x" * 32 + b"-" + b"x" * 16 + b"-xx"
_ZERO_TRACE = b"0" * 32
_ZERO_SPAN = b"0" * 16
_SPANS_PER_DRAW = 256
_spans: list[bytes] = []


def _span_id() -> bytes:
    """A new span id: 16 random hex digits, never all zeros (invalid per the spec).

    It only has to be unique, not secret: the Mersenne Twister, not os.urandom's system call (as the OpenTelemetry
    SDK does). Drawn `_SPANS_PER_DRAW` at a time: one getrandbits and one hex() per draw instead of a formatting
    per message (the runner and the endpoint call this for every message they write)."""
    while not _spans:
        # hex(" ", 8) puts a space between 8-byte groups: split() then cuts the ids apart in C
        drawn = _getrandbits(64 * _SPANS_PER_DRAW).to_bytes(8 * _SPANS_PER_DRAW, "little").hex(" ", 8)
        _spans.extend(drawn.encode().split())
        while _ZERO_SPAN in _spans:
            _spans.remove(_ZERO_SPAN)
    return _spans.pop()


os.register_at_fork(after_in_child=_spans.clear)  # a forked child draws its own ids (random reseeds there too)


def child_traceparent_raw(trace_id: str, parent: bytes | None, trace: bytes | None = None) -> bytes:
    """`child_traceparent` on a raw header value (the per-message path: no decoding when the parent is
    well formed). The common parent (same trace, well formed) keeps its bytes and only its span id is replaced;
    well formed is `_PARENT` checked as one translate (every byte mapped to its class, compared with the
    shape), cheaper than the regex match the other parents get. `trace`: `trace_id` encoded, when the caller
    has it (it is not encoded again)."""
    if parent is not None:
        if trace is None:
            trace = trace_id.encode()
        if (
            parent[3:35] == trace
            and parent.translate(_BYTE_CLASS) == _PARENT_SHAPE
            and parent[:2] == b"00"
            and trace != _ZERO_TRACE
        ):
            return parent[:36] + (_spans.pop() if _spans else _span_id()) + parent[52:]
        if (m := _PARENT.fullmatch(parent)) is not None:
            return b"00-%s-%s-%s" % (w3c_trace_id(trace_id).encode(), _span_id(), m.group(2))
    flags = b"01"
    if parent is not None and (t := _TRACEPARENT.match(parent.decode("utf-8", "replace").strip().lower())):
        flags = t.group(3).encode()
    return b"00-%s-%s-%s" % (w3c_trace_id(trace_id).encode(), _span_id(), flags)


# ---- building ----


def _h(name: str, value: str) -> tuple[str, bytes]:
    return (name, value.encode())


def value_omitted(headers: Iterable[tuple[str, bytes]], value: bytes) -> Headers:
    """The headers of a dead letter written without `value` (it was over the broker's size limit with its error
    headers): `ERROR_VALUE_OMITTED` says how large it was; the error headers still say where the input is."""
    return replace(headers, {ERROR_VALUE_OMITTED: str(len(value))})


def replace(headers: Iterable[tuple[str, bytes]], values: Mapping[str, str | None]) -> Headers:
    """Headers with `values` set (replacing every earlier occurrence) and None-valued names removed."""
    out = [(k, v) for k, v in headers if k not in values]
    out.extend(_h(k, v) for k, v in values.items() if v is not None)
    return out


def first_hop(
    *,
    trace_id: str,
    run: bool = True,
    content_type: str | None = None,
    endpoint_params: str | None = None,
    file_name: str | None = None,
    data_type: MessageDataType = MessageDataType.EMBEDDED,
    traceparent: str | None = None,
) -> Headers:
    """Headers of a message entering the pipeline (the endpoint); `traceparent` continues the caller's.
    Built directly, in a fixed order (the endpoint calls this per request)."""
    out: Headers = [(TRACE_ID, trace_id.encode()), (RUN, b"true" if run else b"false")]
    if content_type is not None:
        out.append((CONTENT_TYPE, content_type.encode()))
    if endpoint_params is not None:
        out.append((ENDPOINT_PARAMS, endpoint_params.encode()))
    if file_name is not None:
        out.append((FILE_NAME, file_name.encode()))
    out.append((MESSAGE_DATA_TYPE, _DATA_TYPE_VALUES[data_type]))
    parent = None if traceparent is None else traceparent.encode()
    out.append((TRACEPARENT, child_traceparent_raw(trace_id, parent)))
    return out


def trace_id_of(headers: Iterable[tuple[str, bytes]]) -> str | None:
    return get(headers, TRACE_ID)


_OUTPUT_SET = (TRACE_ID, RUN, CONTENT_TYPE, FILE_NAME, MESSAGE_DATA_TYPE, TRACEPARENT)
# Headers every output carries with the same value: built once (headers are immutable tuples), not per message.
_RUN_TRUE = (RUN, b"true")
_DATA_TYPE_HEADERS = {t: (MESSAGE_DATA_TYPE, v) for t, v in _DATA_TYPE_VALUES.items()}
NOT_INHERITED = PER_HOP_HEADERS | frozenset(_OUTPUT_SET)
"""Names an output never inherits from its input: the per-hop ones and those `output` sets itself."""
_EMBEDDED_HEADER = _DATA_TYPE_HEADERS[MessageDataType.EMBEDDED]


PLAIN_LAYOUT = (TRACE_ID, RUN, CONTENT_TYPE, MESSAGE_DATA_TYPE, TRACEPARENT)
"""The header names of a *plain* message, in this order and nothing else: what `plain_output` writes, and what
`first_hop` writes for a request with a content type and neither parameters nor a file name. The runner's inline
path compares a message's header names with these by position (a dict per message costs more); `read_plain` is
the same reader for everyone else. tests/unit/bus/test_plain_layout.py fails when writer and reader drift."""


def plain_output(trace: bytes, content_type: bytes, traceparent: bytes) -> Headers:
    """`output`'s headers for a plain message (`PLAIN_LAYOUT`): embedded, with a content type, no file name,
    nothing inherited (no input header outside `NOT_INHERITED`). The runner's per-message path calls this
    directly with what it already has: `trace` (the traceID, encoded), the content type (encoded, ASCII) and the
    child traceparent."""
    return [(TRACE_ID, trace), _RUN_TRUE, (CONTENT_TYPE, content_type), _EMBEDDED_HEADER, (TRACEPARENT, traceparent)]


def read_plain(headers: Headers) -> tuple[bytes, bytes, bytes, bytes, bytes] | None:
    """The values of a plain message's headers in `PLAIN_LAYOUT` order (traceID, run, contentType,
    messageDataType, traceparent), or None when `headers` are laid out any other way."""
    if len(headers) != len(PLAIN_LAYOUT) or any(h[0] != name for h, name in zip(headers, PLAIN_LAYOUT, strict=True)):
        return None
    trace, run, content_type, data_type, traceparent = (v for _, v in headers)
    return trace, run, content_type, data_type, traceparent


def output(
    input_headers: Iterable[tuple[str, bytes]],
    *,
    trace_id: str,
    data_type: MessageDataType,
    content_type: str | None = None,
    file_name: str | None = None,
    by_name: Mapping[str, bytes] | None = None,
    trace: bytes | None = None,
) -> Headers:
    """Headers of a message an algo produced from its input.

    It inherits every input header except the per-hop ones (`PER_HOP_HEADERS`: data type, file name,
    traceparent, run, retry and error headers), so `contentType`, `endpointParams` and custom headers flow
    downstream. `run` is "true": an output is a complete part that triggers the next step. `contentType` is
    the output's own when given.

    The runner calls this per produced message. `by_name` is the input headers as a dict (the last value of a
    name wins, as in Kafka) when the caller already built one: if none of its names is inherited (the plain
    message, straight from an endpoint or a runner), the per-header pass is skipped. `trace` is `trace_id`
    encoded, when the caller has it (the runner reads it from the input's header).
    """
    out: Headers
    if by_name is not None and by_name.keys() <= NOT_INHERITED:
        out = []
        parent = by_name.get(TRACEPARENT)
        inherited_type = by_name.get(CONTENT_TYPE)
    else:
        out, parent, inherited_type = _inherited(input_headers)
    if trace is None:
        trace = trace_id.encode()
    traceparent = child_traceparent_raw(trace_id, parent, trace)
    if content_type is not None:
        ct: bytes | None = content_type.encode()
    elif inherited_type is not None:
        # an ASCII value is valid UTF-8 already: the decode/encode round trip only repairs other bytes
        ct = inherited_type if inherited_type.isascii() else inherited_type.decode("utf-8", "replace").encode()
    else:
        ct = None
    if ct is not None and file_name is None and not out and data_type is MessageDataType.EMBEDDED:
        return plain_output(trace, ct, traceparent)
    out.append((TRACE_ID, trace))
    out.append(_RUN_TRUE)
    if ct is not None:
        out.append((CONTENT_TYPE, ct))
    if file_name is not None:
        out.append((FILE_NAME, file_name.encode()))
    out.append(_DATA_TYPE_HEADERS[data_type])
    out.append((TRACEPARENT, traceparent))
    return out


def _inherited(input_headers: Iterable[tuple[str, bytes]]) -> tuple[Headers, bytes | None, bytes | None]:
    """One pass over an input's headers: (what an output inherits, the last traceparent, the last contentType)."""
    out: Headers = []
    parent: bytes | None = None
    inherited_type: bytes | None = None
    for k, v in input_headers:
        if k in NOT_INHERITED:
            if k == TRACEPARENT:
                parent = v
            elif k == CONTENT_TYPE:
                inherited_type = v
            continue
        out.append((k, v))
    return out, parent, inherited_type


def retry(
    input_headers: Iterable[tuple[str, bytes]],
    *,
    trace_id: str,
    step_index: int,
    retry_num: int,
    due_unix_seconds: float,
) -> Headers:
    """Headers of a copy sent to a retry topic: the input's, with the retry state set (original format).

    `messageDataType` is kept as received (the value is the input's bytes, unchanged) and made explicit.
    """
    hs = list(input_headers)
    return replace(
        hs,
        {
            TRACE_ID: trace_id,
            MESSAGE_DATA_TYPE: data_type(hs).value,
            RETRY_STEP_INDEX: str(step_index),
            RETRY_NUM: str(retry_num),
            # whole seconds (the original's format), rounded up: rounding down would run a copy up to a second early
            RETRY_TIMESTAMP: str(math.ceil(due_unix_seconds)),
        },
    )


def dead_letter(
    input_headers: Iterable[tuple[str, bytes]],
    *,
    trace_id: str,
    error: str,
    error_type: str,
    source_topic: str,
    source_partition: int,
    source_offset: int,
    component: str | None = None,
    now: float | None = None,
) -> Headers:
    """Headers of a dead letter: the input's (retry state included) plus why and where it failed."""
    hs = list(input_headers)
    message = error if len(error) <= MAX_ERROR_MESSAGE else error[: MAX_ERROR_MESSAGE - 1] + "…"
    return replace(
        hs,
        {
            TRACE_ID: trace_id,
            MESSAGE_DATA_TYPE: data_type(hs).value,
            ERROR_MESSAGE: message,
            ERROR_TYPE: error_type,
            ERROR_TOPIC: source_topic,
            ERROR_PARTITION: str(source_partition),
            ERROR_OFFSET: str(source_offset),
            ERROR_TIMESTAMP: str(int(time.time() if now is None else now)),
            ERROR_COMPONENT: component,
        },
    )
