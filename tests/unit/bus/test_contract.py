"""The message contract: original header names and formats, our additions, what an output inherits."""

from __future__ import annotations

import re
import uuid

from hypothesis import given
from hypothesis import strategies as st

from algorun.bus import contract as c
from algorun.bus.local.codec import decode_headers, encode_headers


def test_first_hop_sets_every_header_in_the_original_format() -> None:
    hs = c.first_hop(trace_id="abc", run=False, content_type="text/plain", endpoint_params="a=1&b=2")
    assert c.get(hs, c.TRACE_ID) == "abc"
    assert c.get(hs, c.RUN) == "false"
    assert c.get(hs, c.MESSAGE_DATA_TYPE) == "Embedded"  # set on every hop (original defect)
    assert c.get(hs, c.ENDPOINT_PARAMS) == "a=1&b=2"
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", c.get(hs, c.TRACEPARENT) or "")


def test_output_inherits_request_headers_but_not_per_hop_ones() -> None:
    tid = c.new_trace_id()
    first = c.first_hop(trace_id=tid, content_type="text/csv", endpoint_params="x=1", run=True)
    inp = c.retry([*first, ("custom", b"kept")], trace_id=tid, step_index=1, retry_num=2, due_unix_seconds=1700000000.9)
    out = c.output(inp, trace_id=tid, data_type=c.MessageDataType.FILE_REFERENCE, file_name="f.txt")
    assert c.get(out, c.CONTENT_TYPE) == "text/csv"
    assert c.get(out, c.ENDPOINT_PARAMS) == "x=1"
    assert c.get(out, "custom") == "kept"
    assert c.get(out, c.MESSAGE_DATA_TYPE) == "FileReference"
    assert c.get(out, c.FILE_NAME) == "f.txt"
    assert c.get(out, c.RUN) == "true"
    assert all(c.get(out, h) is None for h in c.RETRY_HEADERS)
    # Same trace, new span.
    parent, child = c.get(inp, c.TRACEPARENT) or "", c.get(out, c.TRACEPARENT) or ""
    assert parent.split("-")[1] == child.split("-")[1] and parent.split("-")[2] != child.split("-")[2]


def test_retry_state_round_trips_in_unix_seconds_never_earlier_than_due() -> None:
    hs = c.retry([], trace_id="t", step_index=2, retry_num=3, due_unix_seconds=1700000000.2)
    assert c.get(hs, c.RETRY_TIMESTAMP) == "1700000001"  # rounded up: a copy never runs before it is due
    assert c.retry_state(hs) == (2, 3, 1700000001)
    exact = c.retry([], trace_id="t", step_index=0, retry_num=1, due_unix_seconds=1700000000.0)
    assert c.get(exact, c.RETRY_TIMESTAMP) == "1700000000"
    assert c.retry_state([("retryNum", b"garbage")]) == (0, 0, None)


def test_dead_letter_carries_the_error_and_its_origin() -> None:
    hs = c.dead_letter(
        [("traceID", b"t")],
        trace_id="t",
        error="boom" * 2000,
        error_type="AlgoFailed",
        source_topic="in",
        source_partition=3,
        source_offset=42,
        now=10,
    )
    assert c.get(hs, c.ERROR_TYPE) == "AlgoFailed"
    assert (c.get(hs, c.ERROR_TOPIC), c.get(hs, c.ERROR_PARTITION), c.get(hs, c.ERROR_OFFSET)) == ("in", "3", "42")
    assert len(c.get(hs, c.ERROR_MESSAGE) or "") <= c.MAX_ERROR_MESSAGE


def test_run_and_data_type_parse_like_the_original() -> None:
    assert c.parse_run(None) is True
    assert c.parse_run("T") is True and c.parse_run("1") is True
    assert c.parse_run("yes") is False  # Go's ParseBool rejects it: garbage means false
    assert c.data_type([("messageDataType", b"FileReference")]) is c.MessageDataType.FILE_REFERENCE
    assert c.data_type([("messageDataType", b"fileReference")]) is c.MessageDataType.EMBEDDED
    assert c.data_type([]) is c.MessageDataType.EMBEDDED


def test_trace_ids_become_w3c_trace_ids() -> None:
    tid = c.new_trace_id()
    assert re.fullmatch(r"[0-9a-f]{32}", tid)
    assert c.w3c_trace_id(tid) == tid
    dashed = "0123abcd-0123-4567-89ab-0123456789ab"
    assert c.w3c_trace_id(dashed) == dashed.replace("-", "")
    assert re.fullmatch(r"[0-9a-f]{32}", c.w3c_trace_id("not hex at all"))


@given(st.lists(st.tuples(st.text(max_size=20), st.binary(max_size=100)), max_size=10))
def test_local_header_encoding_is_byte_exact(headers: list[tuple[str, bytes]]) -> None:
    assert decode_headers(encode_headers(headers)) == headers


def test_new_trace_ids_are_uuid4_hex() -> None:
    ids = {c.new_trace_id() for _ in range(2000)}
    assert len(ids) == 2000
    for tid in list(ids)[:200]:
        parsed = uuid.UUID(hex=tid)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and parsed.hex == tid


TEXT = st.one_of(st.none(), st.text(max_size=12))


@given(
    trace_id=st.text(max_size=40),
    run=st.booleans(),
    content_type=TEXT,
    endpoint_params=TEXT,
    file_name=TEXT,
    data_type=st.sampled_from(list(c.MessageDataType)),
    traceparent=st.one_of(TEXT, st.from_regex(r"00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]", fullmatch=True)),
)
def test_first_hop_is_the_plain_definition(
    trace_id: str,
    run: bool,
    content_type: str | None,
    endpoint_params: str | None,
    file_name: str | None,
    data_type: c.MessageDataType,
    traceparent: str | None,
) -> None:
    """Every header set in the original's order, the absent ones left out (span ids aside)."""
    hs = c.first_hop(
        trace_id=trace_id,
        run=run,
        content_type=content_type,
        endpoint_params=endpoint_params,
        file_name=file_name,
        data_type=data_type,
        traceparent=traceparent,
    )
    expected = c.replace(
        [],
        {
            c.TRACE_ID: trace_id,
            c.RUN: "true" if run else "false",
            c.CONTENT_TYPE: content_type,
            c.ENDPOINT_PARAMS: endpoint_params,
            c.FILE_NAME: file_name,
            c.MESSAGE_DATA_TYPE: data_type.value,
            c.TRACEPARENT: c.child_traceparent(trace_id, traceparent),
        },
    )
    assert [k for k, _ in hs] == [k for k, _ in expected]
    assert hs[:-1] == expected[:-1]
    ours, theirs = hs[-1][1].decode(), expected[-1][1].decode()
    assert ours[:36] == theirs[:36] and ours[52:] == theirs[52:]
