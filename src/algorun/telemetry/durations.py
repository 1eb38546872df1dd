"""A histogram for per-message and per-request timings, without prometheus_client's lock.

A prometheus_client `observe` takes a lock and walks its label map, about a microsecond; the runner and the endpoint
observe once or twice per message, tens of thousands of times a second. Their updates and their scrapes all run on
the event loop's thread, so plain counters suffice; each component's custom collector exports them at scrape time
in the usual histogram exposition (`_bucket`/`_sum`/`_count`).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
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
        """`observe` each value (a batch's runs at once): sorted (in C), then counted with one bisection per bucket
        bound instead of one per value."""
        ordered = sorted(seconds)
        self._add_within([bisect_right(ordered, bound) for bound in self.buckets], len(ordered))
        self.sum += sum(ordered)

    def observe_since(self, now: float, starts: list[float]) -> None:
        """`observe` `now - start` for each of `starts`, given in increasing order (runs started one after another
        on a monotonic clock): counted from the starts themselves, without building the durations."""
        n = len(starts)
        self._add_within([n - bisect_left(starts, now - bound) for bound in self.buckets], n)
        self.sum += n * now - sum(starts)

    def _add_within(self, within: list[int], n: int) -> None:
        """Count `n` values of which `within[i]` are at most `buckets[i]` (`le`, cumulative)."""
        counts, below = self.counts, 0
        for i, upto in enumerate(within):
            counts[i] += upto - below
            below = upto
        counts[-1] += n - below

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
