"""The plain header layout (`contract.PLAIN_LAYOUT`) and its reader stay together: what the endpoint and the runner
write as a plain message is what `read_plain` (and the runner's inline path, by position) reads back."""

from __future__ import annotations

from algorun.bus import contract as c
from algorun.runner import inline


def test_plain_output_round_trips_through_read_plain() -> None:
    parent = c.child_traceparent_raw("t-1", None)
    headers = c.plain_output(b"t-1", b"text/plain", parent)
    assert [name for name, _ in headers] == list(c.PLAIN_LAYOUT)
    assert c.read_plain(headers) == (b"t-1", b"true", b"text/plain", b"Embedded", parent)


def test_a_first_hop_with_only_a_content_type_is_plain() -> None:
    headers = c.first_hop(trace_id="t-2", content_type="application/json")
    assert [name for name, _ in headers] == list(c.PLAIN_LAYOUT)
    values = c.read_plain(headers)
    assert values is not None
    assert values[:4] == (b"t-2", b"true", b"application/json", b"Embedded")


def test_an_output_of_a_plain_input_is_plain() -> None:
    first = c.first_hop(trace_id="t-3", content_type="text/csv")
    out = c.output(first, trace_id="t-3", data_type=c.MessageDataType.EMBEDDED)
    assert c.read_plain(out) is not None
    assert c.read_plain(out) == c.read_plain(c.plain_output(b"t-3", b"text/csv", out[-1][1]))


def test_any_other_layout_is_not_plain() -> None:
    headers = c.first_hop(trace_id="t-4", content_type="text/plain", endpoint_params="a=1")
    assert c.read_plain(headers) is None
    assert c.read_plain(c.first_hop(trace_id="t-5")) is None  # no content type
    swapped = c.plain_output(b"t-6", b"text/plain", b"")
    swapped[0], swapped[1] = swapped[1], swapped[0]
    assert c.read_plain(swapped) is None


def test_the_inline_path_reads_the_same_layout() -> None:
    assert (inline._P0, inline._P1, inline._P2, inline._P3, inline._P4) == c.PLAIN_LAYOUT
