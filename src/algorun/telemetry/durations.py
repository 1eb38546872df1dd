"""A histogram for per-message and per-request timings, without prometheus_client's lock.

A prometheus_client `observe` takes a lock and walks its label map, about a microsecond; the runner and the endpoint
observe once or twice per message, tens of thousands of times a second. Their updates and their scrapes all run on
the event loop's thread, so plain counters suffice; each component's custom collector exports them at scrape time
in the usual histogram exposition (`_bucket`/`_sum`/`_count`).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable


def _bound(b: float) -> str:
    return repr(float(b))  # prometheus_client's own formatting of `le` ("0.005", "1.0", ...)


class Durations:
    """Bucket counts, sum and count, for the event loop's thread only."""

    __slots__ = ("buckets", "counts", "sum")

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.buckets, seconds)] += 1  # `le`: a value equal to a bound is in that bucket
        self.sum += seconds

    def observe_all(self, seconds: Iterable[float]) -> None:
        """`observe` each value (a batch's runs at once: one call instead of one per value)."""
        counts, buckets = self.counts, self.buckets
        total = 0.0
        for s in seconds:
            counts[bisect_left(buckets, s)] += 1
            total += s
        self.sum += total

    @property
    def count(self) -> int:
        """Observations so far (the +Inf bucket's cumulative count), summed when asked, not kept per observe."""
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, float]]:
        """(le, cumulative count) pairs, +Inf last: what `HistogramMetricFamily.add_metric` takes."""
        out: list[tuple[str, float]] = []
        total = 0
        for bound, n in zip([*map(_bound, self.buckets), "+Inf"], self.counts, strict=True):
            total += n
            out.append((bound, total))
        return out
