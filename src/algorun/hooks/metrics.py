"""The hook runner's Prometheus metrics (port 10080, with /health and /ready). `hook` is the hook id
(`{pipelineHookInputName}-{n}`), a bounded label; URLs are not labels (unbounded, and they may carry tokens)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0)


class HookMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.deliveries = Counter("algorun_hook_deliveries", "Messages delivered (2xx answer)", ["hook"], registry=r)
        self.failures = Counter(
            "algorun_hook_delivery_failures", "Failed attempts (each retry counts)", ["hook", "reason"], registry=r
        )
        self.dead_letters = Counter(
            "algorun_hook_dead_letters", "Messages sent to the dead-letter topic", ["hook"], registry=r
        )
        self.request_latency = Histogram(
            "algorun_hook_request_duration_seconds", "One HTTP attempt", ["hook"], buckets=BUCKETS, registry=r
        )
        self.delivery_latency = Histogram(
            "algorun_hook_delivery_duration_seconds",
            "From reading a message to its successful delivery, retries included",
            ["hook"],
            buckets=BUCKETS,
            registry=r,
        )
        self.backlog = Gauge(
            "algorun_hook_backlog", "Messages the hook still owes (in delivery or retry)", ["hook"], registry=r
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
