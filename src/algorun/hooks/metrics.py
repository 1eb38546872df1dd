"""The hook runner's Prometheus metrics (port 10080, with /health and /ready). `hook` is the hook id
(`{pipelineHookInputName}-{n}`), a bounded label; URLs are not labels (unbounded, and they may carry tokens).

The families touched by every delivery (deliveries, the two duration histograms, the backlog) are plain Python
numbers exported by one custom collector at scrape time, as the runner's are (`algorun.runner.metrics`): a
prometheus_client `inc`/`observe`/`set` takes a lock, and four of them per delivery show in `benchmarks/hooks.py`.
Updates and scrapes all run on the hook runner's event loop thread. Their `labels(hook)` children have the
prometheus_client methods (`inc`, `observe`, `set`), so callers resolve a child once and update it per message.
Rare events (failures, dead letters, the circuit, the uncommitted count) keep the ordinary prometheus_client
objects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from algorun.telemetry.durations import Durations

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0)


class Count:
    """A counter child: a plain number."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class Level:
    """A gauge child: a plain number."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def set(self, value: float) -> None:
        self.value = value


Child = TypeVar("Child")


class _Family(Generic[Child]):
    """The children of one hot family by hook id, created on first use as prometheus_client's `labels` does."""

    def __init__(self, name: str, doc: str, make: Callable[[], Child]) -> None:
        self.name = name
        self.doc = doc
        self._make = make
        self.children: dict[str, Child] = {}

    def labels(self, hook: str) -> Child:
        child = self.children.get(hook)
        if child is None:
            child = self.children[hook] = self._make()
        return child


def _durations() -> Durations:
    return Durations(BUCKETS)


class _HotCollector(Collector):
    """Exports the hot families from their plain numbers, in the usual exposition (`_total` on counters,
    `_bucket`/`_sum`/`_count` on histograms)."""

    def __init__(self, metrics: HookMetrics) -> None:
        self.m = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.m
        counter = CounterMetricFamily(m.deliveries.name, m.deliveries.doc, labels=["hook"])
        for hook, count in list(m.deliveries.children.items()):
            counter.add_metric([hook], count.value)
        yield counter
        for family in (m.request_latency, m.delivery_latency):
            histogram = HistogramMetricFamily(family.name, family.doc, labels=["hook"])
            for hook, durations in list(family.children.items()):
                histogram.add_metric([hook], durations.cumulative(), durations.sum)
            yield histogram
        gauge = GaugeMetricFamily(m.backlog.name, m.backlog.doc, labels=["hook"])
        for hook, level in list(m.backlog.children.items()):
            gauge.add_metric([hook], level.value)
        yield gauge


class HookMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.deliveries = _Family("algorun_hook_deliveries", "Messages delivered (2xx answer)", Count)
        self.request_latency = _Family("algorun_hook_request_duration_seconds", "One HTTP attempt", _durations)
        self.delivery_latency = _Family(
            "algorun_hook_delivery_duration_seconds",
            "From reading a message to its successful delivery, retries included",
            _durations,
        )
        self.backlog = _Family("algorun_hook_backlog", "Messages the hook still owes (in delivery or retry)", Level)
        r.register(_HotCollector(self))
        self.failures = Counter(
            "algorun_hook_delivery_failures", "Failed attempts (each retry counts)", ["hook", "reason"], registry=r
        )
        self.dead_letters = Counter(
            "algorun_hook_dead_letters", "Messages sent to the dead-letter topic", ["hook"], registry=r
        )
        self.circuit_state = Gauge(
            "algorun_hook_circuit_state", "The hook's circuit: 0 closed, 0.5 half-open, 1 open", ["hook"], registry=r
        )
        self.circuit_opened = Counter(
            "algorun_hook_circuit_opened",
            "Times the hook's circuit opened (the receiver was found down)",
            ["hook"],
            registry=r,
        )
        self.uncommitted = Gauge(
            "algorun_hook_uncommitted_messages", "Messages read but not yet finished by every hook", registry=r
        )
