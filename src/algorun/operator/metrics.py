"""The operator's Prometheus metrics (served on METRICS_PORT, 8383, when METRICS_ENABLED), named as the chart's
operator dashboard reads them."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RECONCILES = Counter(
    "algorun_operator_reconciles_total", "PipelineDeployment reconciles, by result (ok, invalid, error)", ["result"]
)
RECONCILE_SECONDS = Histogram(
    "algorun_operator_reconcile_duration_seconds",
    "Time to reconcile one PipelineDeployment",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
WRITES = Counter("algorun_operator_writes_total", "Writes to the Kubernetes API, by verb and kind", ["verb", "kind"])
