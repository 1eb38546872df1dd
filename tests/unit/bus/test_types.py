"""Backend-neutral values: offsets to store, message helpers."""

from __future__ import annotations

from algorun.bus import Message, TopicPartition
from algorun.bus.types import store_offsets


def test_store_offsets_keeps_the_highest_next_offset_per_partition() -> None:
    def m(topic: str, partition: int, offset: int) -> Message:
        return Message(topic, partition, offset, None, b"", [], 0)

    stored: dict[TopicPartition, int] = {TopicPartition("b", 0): 50}
    store_offsets(stored, [m("a", 0, 3), m("a", 0, 4), m("a", 1, 9), m("a", 0, 2), m("b", 0, 7)])
    assert stored == {TopicPartition("a", 0): 5, TopicPartition("a", 1): 10, TopicPartition("b", 0): 50}
    store_offsets(stored, {TopicPartition("a", 0): 4, TopicPartition("a", 1): 11})
    assert stored[TopicPartition("a", 0)] == 5 and stored[TopicPartition("a", 1)] == 11
    store_offsets(stored, [])
    assert m("a", 1, 9).tp == TopicPartition("a", 1) and m("a", 1, 9).next_offset == 10
