"""The endpoint's Prometheus metrics, on its own registry (served on the monitoring port, 28080).

The original had no HTTP metrics at all; these cover requests, bytes, latency, broker acknowledgements and the
write-ahead log's depth. Label values are bounded: `path` is a configured path name or `unknown`.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class EndpointMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._children: dict[tuple[MetricWrapperBase, tuple[str, ...]], Any] = {}
        r = self.registry
        self.requests = Counter(
            "endpoint_requests",
            "Requests (HTTP) or stream messages (gRPC) answered",
            ["protocol", "path", "code"],
            registry=r,
        )
        self.request_bytes = Counter(
            "endpoint_request_bytes", "Payload bytes received", ["protocol", "path"], registry=r
        )
        self.latency = Histogram(
            "endpoint_request_duration_seconds",
            "From request received to answer (after the broker or the log acknowledged)",
            ["protocol", "path"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.broker_acks = Counter("endpoint_broker_acks", "Messages acknowledged by the broker", ["topic"], registry=r)
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
        self.in_flight = Gauge("endpoint_in_flight_messages", "Messages awaiting an ack", registry=r)
        self.rejected = Counter(
            "endpoint_rejected", "Requests refused before publishing (overload, limits)", ["reason"], registry=r
        )
        self.breaker_state = Gauge(
            "kafka_cb_current_state",
            "Circuit breaker: 0 closed, 0.5 half-open, 1 open",
            registry=r,
        )

    def child(self, metric: MetricWrapperBase, *values: str) -> Any:
        """`metric.labels(*values)`, cached: `labels()` costs a lock and a lookup on every request otherwise, and
        label values are bounded (configured paths and topics), so the cache is too."""
        key = (metric, values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found
