"""The lock-free histogram exports what prometheus_client's own Histogram would, for the same observations."""

from __future__ import annotations

import math

from hypothesis import assume, given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from algorun.telemetry.durations import Durations

BUCKETS = (0.001, 0.005, 0.01, 0.1, 1.0, 10.0)
VALUES = st.lists(
    st.one_of(st.floats(0, 20, allow_nan=False), st.sampled_from(BUCKETS)),  # bounds themselves: `le` is inclusive
    max_size=60,
)


def reference(values: list[float]) -> tuple[list[tuple[str, float]], float, float]:
    registry = CollectorRegistry()
    hist = Histogram("d", "durations", buckets=BUCKETS, registry=registry)
    for v in values:
        hist.observe(v)
    buckets = [(s.labels["le"], s.value) for s in next(iter(registry.collect())).samples if s.name == "d_bucket"]
    total = registry.get_sample_value("d_sum")
    count = registry.get_sample_value("d_count")
    assert total is not None and count is not None
    return buckets, total, count


@given(values=VALUES, cut=st.integers(0, 60))
def test_same_buckets_sum_and_count_as_prometheus_client(values: list[float], cut: int) -> None:
    one, many = Durations(BUCKETS), Durations(BUCKETS)
    for v in values:
        one.observe(v)
    many.observe_all(values[:cut])  # in two batches, as the runner observes a batch's runs
    many.observe_all(values[cut:])
    buckets, total, count = reference(values)
    for d in (one, many):
        assert d.cumulative() == buckets
        assert d.count == count
        assert math.isclose(d.sum, total, rel_tol=1e-9, abs_tol=1e-9)


@given(starts=st.lists(st.floats(0, 30, allow_nan=False), max_size=60), now=st.floats(30, 40))
def test_durations_since_increasing_starts_are_bucketed_like_their_differences(starts: list[float], now: float) -> None:
    """`observe_since` (the runner's usual runs) counts `now - start` as `observe` would. A duration within
    rounding of a bound may fall on either side of it, depending on how it is computed: not drawn."""
    starts.sort()
    assume(all(abs(now - s - b) > 1e-9 for s in starts for b in BUCKETS))
    one, since = Durations(BUCKETS), Durations(BUCKETS)
    for s in starts:
        one.observe(now - s)
    since.observe_since(now, starts)
    assert since.cumulative() == one.cumulative()
    assert math.isclose(since.sum, one.sum, rel_tol=1e-9, abs_tol=1e-6)
