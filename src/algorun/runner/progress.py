"""What is fetched and not finished yet: the offsets that may be committed, and the count a drain waits on.

A fetched message counts as unfinished from its dispatch until its run's writes are all acknowledged (or until it
is dropped: revoked while queued, abandoned at a stop, a bug). A staged part stops counting when it is staged; the
run that uses it finishes its offset. `idle` is set while nothing is unfinished: the transactional loop commits
then, and a drain waits for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from algorun.bus.offsets import OffsetTracker
from algorun.bus.types import Message
from algorun.runner.metrics import RunnerMetrics

log = logging.getLogger(__name__)


class Progress:
    __slots__ = ("idle", "on_internal_error", "tracker", "unfinished")

    def __init__(self) -> None:
        self.tracker = OffsetTracker()
        self.unfinished = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.on_internal_error: Callable[[Message], None] | None = None
        """Called after an internal error is logged (the runner stops: see Runner.run)."""

    def fetched(self, messages: list[Message]) -> None:
        """All of a fetched batch first: one that is not finished holds the commit of the later ones back."""
        self.tracker.add_all(messages)
        self.count(len(messages))

    def finished(self, messages: Iterable[Message], runs: int) -> None:
        """`runs` runs finished, with all their `messages` (staged parts and triggers): committable."""
        self.tracker.done_all(messages)
        self.count(-runs)

    def count(self, n: int) -> None:
        """`n` more unfinished messages (fewer when negative), without touching their offsets."""
        self.unfinished += n
        if self.unfinished > 0:
            self.idle.clear()
        else:
            self.idle.set()

    def internal_error(self, m: Message, metrics: RunnerMetrics) -> None:
        """A bug, not the message's fault: logged, and `m` is never committed (read again after a restart)."""
        log.exception("unexpected error handling %s[%d]@%d", m.topic, m.partition, m.offset)
        metrics.runner_error("internal")
        self.count(-1)
        if self.on_internal_error is not None:
            self.on_internal_error(m)

    def reset(self) -> None:
        """Forget everything: an aborted transaction reads again from the last commit."""
        self.tracker = OffsetTracker()
        self.unfinished = 0
        self.idle.set()
