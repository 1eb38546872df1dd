"""Header handling: what the runner reads, and what retry copies, dead letters and replays carry."""

from __future__ import annotations

from algorun.bus import contract
from algorun.bus.types import Message
from algorun.runner.provenance import dead_letter_headers, header_dict, read_inbound, replay_headers, retry_headers
from algorun.runner.retry import Decision, Step


def message(topic: str = "src", headers: list[tuple[str, bytes]] | None = None) -> Message:
    return Message(topic, 2, 41, b"k", b"v", headers or [], 0)


def test_defaults_of_a_bare_message() -> None:
    inb = read_inbound(message(), frozenset())
    assert inb.run is True
    assert len(inb.trace_id) == 32
    assert inb.file_reference is False
    assert inb.due is None
    assert (inb.source_topic, inb.source_partition, inb.source_offset) == ("src", 2, 41)


def test_declared_file_reference_applies_only_without_the_header() -> None:
    assert read_inbound(message(), frozenset(), declared_file_reference=True).file_reference
    hs = [(contract.MESSAGE_DATA_TYPE, b"Embedded")]
    assert not read_inbound(message(headers=hs), frozenset(), declared_file_reference=True).file_reference


def test_retry_copy_then_dead_letter_remember_the_origin_and_error() -> None:
    first = message(headers=[(contract.TRACE_ID, b"t1"), (contract.RUN, b"true"), ("custom", b"c")])
    inb = read_inbound(first, frozenset())
    d = Decision(Step(3, "5s", 5.0, 2), 1, due=1234.9)
    hs = retry_headers(first, inb, d, "boom", "ValueError", "o/a:1[1]")
    h = header_dict(hs)
    assert h[contract.RETRY_STEP_INDEX] == "3"
    assert h[contract.RETRY_NUM] == "1"
    assert h[contract.RETRY_TIMESTAMP] == "1235"  # the due time rounded up to whole seconds
    assert h[contract.ERROR_TOPIC] == "src"
    assert h[contract.ERROR_MESSAGE] == "boom"
    assert h["custom"] == "c"
    copy = Message("retry-topic", 0, 7, b"k", b"v", hs, 0)
    inb2 = read_inbound(copy, frozenset({"retry-topic"}))
    assert inb2.source_topic == "src"
    assert (inb2.source_partition, inb2.source_offset) == (2, 41)
    assert inb2.due == 1235.0
    assert (inb2.state.step_index, inb2.state.retry_num) == (3, 1)
    dl = header_dict(dead_letter_headers(copy, inb2, "boom again", "ValueError", "o/a:1[1]"))
    assert dl[contract.ERROR_TOPIC] == "src"
    assert dl[contract.ERROR_OFFSET] == "41"
    assert dl[contract.ERROR_MESSAGE] == "boom again"
    assert dl[contract.RETRY_NUM] == "1"
    again = header_dict(replay_headers(dead_letter_headers(copy, inb2, "x", "E", "c"), now=99.0))
    assert contract.ERROR_MESSAGE not in again
    assert again[contract.RETRY_NUM] == "0"
    assert again[contract.ERROR_TOPIC] == "src"  # the runner finds the input again
