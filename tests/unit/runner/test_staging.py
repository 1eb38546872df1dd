from __future__ import annotations

from algorun.bus.types import Message, TopicPartition
from algorun.runner.model import Part
from algorun.runner.staging import Staged, Staging


def msg(p: int, o: int) -> Message:
    return Message("t", p, o, None, b"x", [], 0)


def test_take_returns_parts_in_order_and_expiry_and_revoke_remove_them() -> None:
    s = Staging()
    s.stage(("in", "a"), Staged(msg(0, 1), Part(b"1"), "t", since=0.0))
    s.stage(("in", "a"), Staged(msg(0, 2), Part(b"2"), "t", since=1.0))
    s.stage(("in", "b"), Staged(msg(1, 1), Part(b"3"), "t", since=5.0))
    assert len(s) == 3
    assert [x.part.data for x in s.take(("in", "a"))] == [b"1", b"2"]
    assert s.take(("in", "a")) == []
    assert s.expired(now=5.5, ttl=1.0) == []
    assert [k for k, _ in s.expired(now=7.0, ttl=1.0)] == [("in", "b")]
    s.stage(("in", "c"), Staged(msg(2, 1), Part(b"4"), "t", since=0.0))
    assert s.drop([TopicPartition("t", 2)]) == 1
    assert len(s) == 0
