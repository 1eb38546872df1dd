"""One awaitable for a whole `produce_many` batch: it resolves once, with the failures by index.

Per-message asyncio futures cost a future, a done-callback and a scheduled loop callback each (more than
librdkafka's own produce call; `benchmarks/bus.py` measures produce per message and in batches); a batch pays
that once. Successes are
only counted: nothing is built per acknowledged message, which is what lets the Kafka backend give every message
of a batch the same delivery callback (see `fail_by_content`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from algorun.bus.errors import BusError
from algorun.bus.types import OutRecord

log = logging.getLogger(__name__)

Failures = dict[int, BusError]
"""What `Producer.produce_many` resolves with: the index of each message that was not stored, and why."""

_ContentKey = tuple[str, bytes | None, bytes | None]


class BatchOutcomes:
    """The outcome of one batch: `future` resolves with its `Failures` once every message's report is in.

    Each message reports exactly once, with `settle` (its index known) or `fail_by_content` / `count`
    (a shared callback that does not know it)."""

    __slots__ = ("_by_content", "failures", "future", "records", "remaining")

    def __init__(self, future: asyncio.Future[Failures], records: Sequence[OutRecord]) -> None:
        self.future = future
        self.records = records
        self.failures: Failures = {}
        self.remaining = len(records)
        self._by_content: dict[_ContentKey, list[int]] | None = None
        if not records:
            future.set_result(self.failures)

    def settle(self, index: int, error: BusError | None) -> None:
        """Message `index` is stored (`error` None) or failed (event loop thread only)."""
        if error is not None:
            self.failures.setdefault(index, error)
        self.count()

    def count(self) -> None:
        """One more message is accounted for; the last one resolves the future."""
        self.remaining -= 1
        if not self.remaining and not self.future.done():
            self.future.set_result(self.failures)

    def fail_by_content(self, topic: str, key: bytes | None, value: bytes | None, error: BusError) -> None:
        """A failure reported with the message's content but not its index (a delivery callback shared by the
        batch): every record of the batch with the same topic, key and value fails with it. Records that only
        their headers tell apart cannot be told apart here, so they are all written again: at worst a duplicate,
        never a loss. A report matching no record (it cannot happen) fails every record not failed yet."""
        if self._by_content is None:
            by_content: dict[_ContentKey, list[int]] = {}
            self._by_content = by_content
            for i, (t, v, k, _, _) in enumerate(self.records):
                by_content.setdefault((t, _as_bytes(k), _as_bytes(v)), []).append(i)
        failures = self.failures
        matches = self._by_content.get((topic, key, value))
        if matches is None:
            log.warning("a failed delivery to %s matches no message of its batch: failing the whole batch", topic)
            matches = list(range(len(self.records)))
        for i in matches:
            failures.setdefault(i, error)
        self.count()


def _as_bytes(data: bytes | str | None) -> bytes | None:
    """What a delivery report gives back for a key or value the producer was handed (confluent-kafka encodes
    a str as UTF-8)."""
    if data is None or type(data) is bytes:
        return data
    return data.encode() if isinstance(data, str) else bytes(data)
