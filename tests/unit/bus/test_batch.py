"""`BatchOutcomes`: a batch resolves once every message reported, with exactly the failed ones; a failure known
only by content never marks fewer messages failed than it could be (a duplicate, never a loss)."""

from __future__ import annotations

import asyncio

from algorun.bus.batch import BatchOutcomes
from algorun.bus.errors import BusError
from algorun.bus.types import OutRecord

RECORDS: list[OutRecord] = [
    ("a", b"v0", b"k", None, None),
    ("a", b"v1", b"k", [("h", b"1")], None),
    ("a", b"v1", b"k", [("h", b"2")], None),  # told apart from the one above by its headers only
    ("b", b"v1", b"k", None, None),
    ("a", b"v1", None, None, None),
]


async def test_resolves_after_the_last_report_with_no_failures() -> None:
    fut: asyncio.Future[dict[int, BusError]] = asyncio.get_running_loop().create_future()
    batch = BatchOutcomes(fut, RECORDS)
    for i in range(len(RECORDS) - 1):
        batch.settle(i, None)
    assert not fut.done()
    batch.count()
    assert fut.result() == {}


async def test_an_empty_batch_is_resolved_at_once() -> None:
    fut: asyncio.Future[dict[int, BusError]] = asyncio.get_running_loop().create_future()
    BatchOutcomes(fut, [])
    assert fut.result() == {}


async def test_settle_attributes_a_failure_to_its_index() -> None:
    fut: asyncio.Future[dict[int, BusError]] = asyncio.get_running_loop().create_future()
    batch = BatchOutcomes(fut, RECORDS)
    error = BusError("refused")
    batch.settle(2, error)
    for i in (0, 1, 3, 4):
        batch.settle(i, None)
    assert fut.result() == {2: error}


async def test_a_failure_by_content_fails_every_record_it_could_be_and_no_other() -> None:
    fut: asyncio.Future[dict[int, BusError]] = asyncio.get_running_loop().create_future()
    batch = BatchOutcomes(fut, RECORDS)
    error = BusError("timed out")
    batch.fail_by_content("a", b"k", b"v1", error)  # 1 or 2: both are written again
    for _ in range(len(RECORDS) - 1):
        batch.count()
    assert fut.result() == {1: error, 2: error}  # not 3 (another topic), not 4 (no key), not 0 (another value)


async def test_a_str_key_or_value_matches_what_the_report_gives_back() -> None:
    fut: asyncio.Future[dict[int, BusError]] = asyncio.get_running_loop().create_future()
    records: list[OutRecord] = [("a", "välue", "k", None, None), ("a", b"other", b"k", None, None)]  # type: ignore[list-item]
    batch = BatchOutcomes(fut, records)
    error = BusError("timed out")
    batch.fail_by_content("a", b"k", "välue".encode(), error)
    batch.count()
    assert fut.result() == {0: error}


async def test_a_failure_matching_nothing_fails_the_whole_batch() -> None:
    fut: asyncio.Future[dict[int, BusError]] = asyncio.get_running_loop().create_future()
    batch = BatchOutcomes(fut, RECORDS)
    first, second = BusError("first"), BusError("unknown content")
    batch.settle(0, first)
    batch.fail_by_content("c", None, b"?", second)
    for _ in range(len(RECORDS) - 2):
        batch.count()
    assert fut.result() == {0: first, 1: second, 2: second, 3: second, 4: second}
