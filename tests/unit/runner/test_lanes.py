"""Lane keys: per-key order is kept, and keys run concurrently only when asked."""

from __future__ import annotations

from algorun.bus.types import TopicPartition
from algorun.runner.lanes import lane_key


def test_lanes_keep_per_key_order() -> None:
    a, b = TopicPartition("t", 0), TopicPartition("t", 1)
    assert lane_key(a, b"k", by_key=False) == lane_key(a, b"j", by_key=False)
    assert lane_key(a, b"k", by_key=True) != lane_key(a, b"j", by_key=True)
    assert lane_key(a, b"k", by_key=True) != lane_key(b, b"k", by_key=True)
    assert lane_key(a, None, by_key=True) == a
