"""The endpoint's Prometheus metrics, on its own registry (served on the monitoring port, 28080).

They cover requests, bytes, latency, broker acknowledgements and the write-ahead log's depth. Label values are
bounded: `path` is a configured path name or `unknown`.

Per-request families (requests, bytes, latency, broker acks) are plain Python counters exported by a custom
collector at scrape time, as the runner does: a prometheus_client `inc`/`observe`/`set` takes a lock, and five
of them per request are a visible share of the CPU that bounds the request rate (`benchmarks/endpoint.py`,
`http.max`). Every update and every scrape runs on the event loop's thread (both `/metrics`
servers are on that loop), so no lock is needed. The in-flight gauge is read from the publisher at scrape time.
Rare events (broker errors, rejections, WAL writes, breaker state) keep the ordinary prometheus_client objects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from algorun.telemetry.durations import Durations

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _HotCollector(Collector):
    """Exports `EndpointMetrics`' plain counters with the names and labels they had as prometheus_client objects."""

    def __init__(self, metrics: EndpointMetrics) -> None:
        self.m = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.m
        fam = CounterMetricFamily(
            "endpoint_requests",
            "Requests (HTTP) or stream messages (gRPC) answered",
            labels=["protocol", "path", "code"],
        )
        for labels, n in list(m.requests.items()):
            fam.add_metric(list(labels), n)
        yield fam
        fam = CounterMetricFamily("endpoint_request_bytes", "Payload bytes received", labels=["protocol", "path"])
        for pair, size in list(m.request_bytes.items()):
            fam.add_metric(list(pair), size)
        yield fam
        hist = HistogramMetricFamily(
            "endpoint_request_duration_seconds",
            "From request received to answer (after the broker or the log acknowledged)",
            labels=["protocol", "path"],
        )
        for pair, durations in list(m.latency.items()):
            hist.add_metric(list(pair), durations.cumulative(), durations.sum)
        yield hist
        fam = CounterMetricFamily("endpoint_broker_acks", "Messages acknowledged by the broker", labels=["topic"])
        for topic, n in list(m.broker_acks.items()):
            fam.add_metric([topic], n)
        yield fam
        yield GaugeMetricFamily("endpoint_in_flight_messages", "Messages awaiting an ack", value=m.in_flight())


class EndpointMetrics:
    """The endpoint's metric families: per-request ones as plain counters read at scrape time, rare ones as
    prometheus_client objects (module docstring)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # Hot families: plain arithmetic per request, exported by _HotCollector.
        self.requests: dict[tuple[str, str, str], int] = {}  # (protocol, path, code) -> answered
        self.request_bytes: dict[tuple[str, str], int] = {}  # (protocol, path) -> payload bytes
        self.latency: dict[tuple[str, str], Durations] = {}  # (protocol, path) -> durations
        self.broker_acks: dict[str, int] = {}  # topic -> acknowledged messages
        self.in_flight: Callable[[], float] = lambda: 0  # the publisher installs its own reader
        r.register(_HotCollector(self))
        self.broker_errors = Counter(
            "endpoint_broker_errors", "Messages the broker did not acknowledge", ["topic", "error"], registry=r
        )
        self.wal_writes = Counter(
            "endpoint_wal_writes", "Messages written to the write-ahead log", ["topic"], registry=r
        )
        self.wal_forwarded = Counter(
            "endpoint_wal_forwarded", "Messages forwarded from the write-ahead log to the broker", ["topic"], registry=r
        )
        self.wal_messages = Gauge("endpoint_wal_messages", "Messages in the WAL (not yet in Kafka)", registry=r)
        self.wal_bytes = Gauge("endpoint_wal_bytes", "Bytes in the write-ahead log (not yet in Kafka)", registry=r)
        self.wal_dead_letters = Gauge(
            "endpoint_wal_dead_letters",
            "Messages the broker refused for good, kept in the write-ahead log's dead_letter table",
            registry=r,
        )
        self.rejected = Counter(
            "endpoint_rejected", "Requests refused before publishing (overload, limits)", ["reason"], registry=r
        )
        self.producer_renewals = Counter(
            "endpoint_producer_renewals", "Producers replaced on SIGHUP (credentials read again)", registry=r
        )
        self.breaker_state = Gauge(
            "kafka_cb_current_state",
            "Circuit breaker: 0 closed, 0.5 half-open, 1 open",
            registry=r,
        )

    # Per-request calls: dict lookups and integer additions, nothing else.

    def answered(self, protocol: str, path: str, code: str, seconds: float) -> None:
        """One request (HTTP) or stream message (gRPC) answered with `code` after `seconds`."""
        key = (protocol, path, code)
        requests = self.requests
        requests[key] = requests.get(key, 0) + 1
        durations = self.latency.get((protocol, path))
        if durations is None:
            durations = self.latency[(protocol, path)] = Durations(LATENCY_BUCKETS)
        durations.observe(seconds)

    def counted(self, protocol: str, path: str, code: str) -> None:
        """An answer without a duration (a gRPC stream ended by an error)."""
        key = (protocol, path, code)
        self.requests[key] = self.requests.get(key, 0) + 1

    def received(self, protocol: str, path: str, size: int) -> None:
        key = (protocol, path)
        self.request_bytes[key] = self.request_bytes.get(key, 0) + size

    def acknowledged(self, topic: str, n: int = 1) -> None:
        acks = self.broker_acks
        acks[topic] = acks.get(topic, 0) + n
