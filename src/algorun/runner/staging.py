"""`run=false` staging: parts of one trace wait here until a `run=true` message (or a trigger-only, empty one)
starts the run with all of them.

A staged part is kept in memory, and its offset stays uncommitted until the run that used it is finished, so
after a crash the parts are read and staged again. Parts that wait longer than the TTL are taken out (the runner
dead-letters them), so one missing trigger cannot hold a partition's commits back forever.
Pure: the caller passes the clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from algorun.bus.types import Message, TopicPartition
from algorun.runner.model import Part

StageKey = tuple[str, str]
"""(input name, traceID): there is no join across inputs, each input runs on its own."""


@dataclass(slots=True)
class Staged:
    """One staged part, with the message it came from (its offset stays uncommitted until its run is finished)
    and when it was staged (for the TTL)."""

    message: Message
    part: Part
    source_topic: str
    since: float


class Staging:
    """The staged parts by trace, in arrival order (module docstring)."""

    def __init__(self) -> None:
        self._parts: dict[StageKey, list[Staged]] = {}
        self.count = 0
        """Parts staged now: a plain attribute, read per message by the runner's inline path (`len` is a call)."""

    def stage(self, key: StageKey, item: Staged) -> None:
        self._parts.setdefault(key, []).append(item)
        self.count += 1

    def has(self, key: StageKey) -> bool:
        return key in self._parts

    def take(self, key: StageKey) -> list[Staged]:
        """Every part staged for `key`, in arrival order, removed."""
        items = self._parts.pop(key, [])
        self.count -= len(items)
        return items

    def expired(self, now: float, ttl: float) -> list[tuple[StageKey, list[Staged]]]:
        """Groups whose first part waited more than `ttl` seconds, removed."""
        old = [k for k, items in self._parts.items() if now - items[0].since > ttl]
        return [(k, self.take(k)) for k in old]

    def drop(self, tps: Iterable[TopicPartition]) -> int:
        """Forget parts read from revoked partitions (their new owner reads them again); how many."""
        gone = set(tps)
        dropped = 0
        for key in list(self._parts):
            items = self._parts[key]
            kept = [s for s in items if s.message.tp not in gone]
            dropped += len(items) - len(kept)
            if kept:
                self._parts[key] = kept
            else:
                del self._parts[key]
        self.count -= dropped
        return dropped

    def clear(self) -> None:
        """Forget every part (an aborted transaction reads them again)."""
        self._parts.clear()
        self.count = 0

    def __len__(self) -> int:
        return self.count
