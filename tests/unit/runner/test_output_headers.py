"""The contract's one-pass output headers (built per produced message) equal the plain definition below, exactly
(only the random span id differs)."""

from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from algorun.bus import contract
from algorun.bus.types import Headers

NAMES = st.sampled_from(
    [
        contract.TRACE_ID,
        contract.RUN,
        contract.CONTENT_TYPE,
        contract.FILE_NAME,
        contract.MESSAGE_DATA_TYPE,
        contract.TRACEPARENT,
        contract.ENDPOINT_PARAMS,
        contract.RETRY_NUM,
        contract.ERROR_MESSAGE,
        "custom",
        "x-other",
    ]
)
TRACE_IDS = st.one_of(
    st.from_regex(r"[0-9a-f]{32}", fullmatch=True), st.text(max_size=40), st.just("0" * 32), st.just("A-b-C")
)
PARENTS = st.one_of(
    st.from_regex(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}", fullmatch=True).map(str.encode),
    st.binary(max_size=60),
    st.just(b" 00-0123456789ABCDEF0123456789abcdef-0123456789abcdef-00 "),
)
VALUES = st.one_of(st.binary(max_size=20), PARENTS)
SPAN = re.compile(rb"^(00-[0-9a-f]{32}-)[0-9a-f]{16}(-[0-9a-f]{2})$")


def reference_traceparent(trace_id: str, parent: str | None) -> str:
    """The W3C definition, plainly: same trace (the traceID itself when 32 hex digits, else a hash), any new span,
    the parent's sampled flag (01 without a parseable parent)."""
    compact = trace_id.replace("-", "").lower()
    valid = re.fullmatch(r"[0-9a-f]{32}", compact) is not None and compact != "0" * 32
    trace = compact if valid else hashlib.sha256(trace_id.encode()).hexdigest()[:32]
    m = re.match(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-([0-9a-f]{2})$", (parent or "").strip().lower())
    return f"00-{trace}-{'1' * 16}-{m.group(1) if m else '01'}"


def reference_output(
    headers: Headers,
    trace_id: str,
    data_type: contract.MessageDataType,
    content_type: str | None,
    file_name: str | None,
) -> Headers:
    """Every input header but the per-hop and the rewritten ones, then the output's own."""
    parent = contract.get(headers, contract.TRACEPARENT)
    own = {
        contract.TRACE_ID: trace_id,
        contract.RUN: "true",
        contract.CONTENT_TYPE: content_type
        if content_type is not None
        else contract.get(headers, contract.CONTENT_TYPE),
        contract.FILE_NAME: file_name,
        contract.MESSAGE_DATA_TYPE: data_type.value,
        contract.TRACEPARENT: reference_traceparent(trace_id, parent),
    }
    kept = [(k, v) for k, v in headers if k not in contract.PER_HOP_HEADERS and k not in own]
    return kept + [(k, v.encode()) for k, v in own.items() if v is not None]


def _without_span(headers: Headers) -> Headers:
    out: Headers = []
    for k, v in headers:
        if k == contract.TRACEPARENT:
            m = SPAN.match(v)
            assert m is not None, v
            v = m.group(1) + b"*" + m.group(2)
        out.append((k, v))
    return out


@given(
    headers=st.lists(st.tuples(NAMES, VALUES), max_size=12),
    trace_id=TRACE_IDS,
    data_type=st.sampled_from(list(contract.MessageDataType)),
    content_type=st.one_of(st.none(), st.text(max_size=10)),
    file_name=st.one_of(st.none(), st.text(max_size=10)),
)
def test_same_headers_as_the_contract(
    headers: Headers,
    trace_id: str,
    data_type: contract.MessageDataType,
    content_type: str | None,
    file_name: str | None,
) -> None:
    ours = contract.output(
        headers, trace_id=trace_id, data_type=data_type, content_type=content_type, file_name=file_name
    )
    theirs = reference_output(headers, trace_id, data_type, content_type, file_name)
    assert _without_span(ours) == [(k, v) for k, v in _without_span(theirs)]
    with_dict = contract.output(
        headers,
        trace_id=trace_id,
        data_type=data_type,
        content_type=content_type,
        file_name=file_name,
        by_name=dict(headers),
    )
    assert _without_span(with_dict) == _without_span(ours)


@given(trace_id=TRACE_IDS, parent=st.one_of(st.none(), PARENTS))
def test_traceparent_keeps_the_trace_and_flags(trace_id: str, parent: bytes | None) -> None:
    ours = contract.child_traceparent_raw(trace_id, parent).decode()
    theirs = reference_traceparent(trace_id, None if parent is None else parent.decode("utf-8", "replace"))
    assert ours[:36] == theirs[:36] and ours[-3:] == theirs[-3:]
    assert ours[36:52] != "0" * 16


def test_span_ids_do_not_repeat() -> None:
    spans = [contract.child_traceparent_raw("a" * 32, None)[36:52] for _ in range(20_000)]
    assert len(set(spans)) == len(spans)


HEX = "0123456789abcdef"


@given(
    trace_id=st.from_regex(r"[0-9a-f]{32}", fullmatch=True),
    version=st.sampled_from(["00", "00", "01", "ff", "0g"]),
    span=st.one_of(st.text(HEX, min_size=16, max_size=16), st.text(min_size=16, max_size=16)),
    flags=st.one_of(st.sampled_from(["00", "01", "ff", "0A"]), st.text(max_size=3)),
    content_type=st.one_of(st.none(), st.text(max_size=10)),
    inherited_type=st.one_of(st.none(), st.binary(max_size=10), st.just(b"text/plain")),
)
def test_same_headers_when_the_parent_continues_the_trace(
    trace_id: str, version: str, span: str, flags: str, content_type: str | None, inherited_type: bytes | None
) -> None:
    """The usual input (from an endpoint or a runner): its traceparent carries the same trace. The output path
    that keeps the parent's bytes and swaps only the span id agrees with the plain definition, malformed
    versions, spans and flags included."""
    headers: Headers = contract.first_hop(trace_id=trace_id)
    headers = [(k, v) for k, v in headers if k not in (contract.TRACEPARENT, contract.CONTENT_TYPE)]
    headers.append((contract.TRACEPARENT, f"{version}-{trace_id}-{span}-{flags}".encode()))
    if inherited_type is not None:
        headers.append((contract.CONTENT_TYPE, inherited_type))
    data_type = contract.MessageDataType.EMBEDDED
    theirs = _without_span(reference_output(headers, trace_id, data_type, content_type, None))
    for by_name in (None, dict(headers)):
        ours = contract.output(
            headers, trace_id=trace_id, data_type=data_type, content_type=content_type, by_name=by_name
        )
        assert _without_span(ours) == theirs


def test_span_ids_are_never_all_zeros(monkeypatch: pytest.MonkeyPatch) -> None:
    """A draw of random bits that happens to be all zeros yields no span id (the spec forbids it); the next
    draw does."""
    draws = iter([0, 0, int.from_bytes(b"\x01" * 8 * 256, "little")])
    monkeypatch.setattr(contract, "_getrandbits", lambda _bits: next(draws))
    monkeypatch.setattr(contract, "_spans", [])
    assert contract._span_id() == b"01" * 8
