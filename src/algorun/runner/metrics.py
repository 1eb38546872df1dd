"""The runner's Prometheus metrics: the `algorunner_*` families of the original Algo.Run (names and labels kept
for the chart's dashboard) plus lag, in-flight, outcomes and dead letters by step.

Byte counters count the real size of every message, under its input or output name; output bytes are counted
when the broker acknowledged them, not when enqueued; `algorunner_algo_error` counts every failed run and
`algorunner_runner_error` every runner-side failure. The registry is our own, with the process and platform
collectors (resident memory).

Per-message families (bytes, outcomes, acks, the two duration histograms) are plain Python counters exported by
one custom collector at scrape time: a prometheus_client `inc`/`observe` takes a lock and walks label maps, and
at tens of thousands of messages per second those calls show in `benchmarks/runner.py`. The exposition is the
usual one (`_total` on counters, `_bucket`/`_sum`/`_count` on histograms); values are computed at scrape time.
Rare events (retries, dead letters, errors, lag, gauges) keep the ordinary prometheus_client objects.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from algorun.api.configs import RunnerConfig
from algorun.telemetry.durations import Durations

BUCKETS = (0.005, 0.05, 0.25, 1, 2.5, 5, 7.5, 10, 20, 30)
LABELS = ("deployment", "pipeline", "component", "name", "version", "index")


def _histogram(name: str, doc: str, durations: Durations, labels: dict[str, str]) -> HistogramMetricFamily:
    fam = HistogramMetricFamily(name, doc, labels=list(labels))
    fam.add_metric(list(labels.values()), durations.cumulative(), durations.sum)
    return fam


class _HotCollector(Collector):
    """Exports the per-message families from `RunnerMetrics`' plain counters (read on the loop's thread, like
    every update, since /metrics is served by the runner's own event loop)."""

    def __init__(self, metrics: RunnerMetrics) -> None:
        self.m = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.m
        base = list(m.labels)
        values = list(m.labels.values())
        yield _histogram(
            "algorunner_run_duration_seconds",
            "Time from reading a run's trigger message to its outputs (or retry/dead letter) being acknowledged",
            m.run_duration,
            m.labels,
        )
        yield _histogram(
            "algorunner_algo_duration_seconds",
            "Time the algo took per run (failed runs included)",
            m.algo_duration,
            m.labels,
        )
        families = (
            ("algorunner_msg_bytes_input", "Bytes of consumed message values", "input", m.bytes_in, 0),
            ("algorunner_data_bytes_input", "Bytes of input data handed to the algo (claim checks resolved)",
             "input", m.bytes_in, 1),
            ("algorunner_msg_bytes_output", "Bytes of acknowledged produced message values", "output", m.bytes_out, 0),
            ("algorunner_data_bytes_output", "Bytes of output data the algo produced", "output", m.bytes_out, 1),
        )  # fmt: skip
        for name, doc, label, table, i in families:
            fam = CounterMetricFamily(name, doc, labels=[*base, label, "status"])
            for (what, status), counts in list(table.items()):
                fam.add_metric([*values, what, status], counts[i])
            yield fam
        fam = CounterMetricFamily(
            "algorunner_messages",
            "Consumed messages by outcome (ok, staged, retry, dead_letter)",
            labels=[*base, "input", "outcome"],
        )
        for (input_name, outcome), n in list(m.outcomes.items()):
            fam.add_metric([*values, input_name, outcome], n)
        yield fam
        fam = CounterMetricFamily("kafka_client_ack_cnt", "Acknowledged produced messages", labels=["topic"])
        for topic, n in list(m.acks.items()):
            fam.add_metric([topic], n)
        yield fam


class RunnerMetrics:
    def __init__(self, config: RunnerConfig, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        if registry is None:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
        ident = config.identity
        self.labels = {
            "deployment": f"{ident.deployment_owner}/{ident.deployment_name}",
            "pipeline": f"{ident.pipeline_owner}/{ident.pipeline_name}",
            "component": "algo",
            "name": f"{config.owner}/{config.name}",
            "version": config.version,
            "index": str(config.index),
        }
        r = self.registry
        # Hot families: updated with plain arithmetic, exported by _HotCollector.
        self.run_duration = Durations(BUCKETS)
        self.algo_duration = Durations(BUCKETS)
        self.bytes_in: dict[tuple[str, str], list[int]] = {}  # (input, status) -> [message bytes, data bytes]
        self.bytes_out: dict[tuple[str, str], list[int]] = {}  # (output, status) -> [message bytes, data bytes]
        self.outcomes: dict[tuple[str, str], int] = {}  # (input, outcome) -> messages
        self.acks: dict[str, int] = {}  # topic -> acknowledged writes
        r.register(_HotCollector(self))
        self._retry = Counter(
            "algorunner_retry", "Scheduled retries, by step and attempt", [*LABELS, "step", "repeat"], registry=r
        )
        self.dlq = Counter("algorunner_dlq", "Messages sent to the dead-letter topic", LABELS, registry=r).labels(
            **self.labels
        )
        self._dlq_step = Counter(
            "algorunner_dlq_by_step",
            "Dead letters by the last retry step they went through (none: no retry)",
            [*LABELS, "step"],
            registry=r,
        )
        self.algo_error = Counter("algorunner_algo_error", "Failed algo runs", LABELS, registry=r).labels(**self.labels)
        self._runner_error = Counter(
            "algorunner_runner_error",
            "Runner-side failures (produce, storage, commit), by kind",
            [*LABELS, "kind"],
            registry=r,
        )
        self.in_flight = Gauge(
            "algorunner_in_flight_messages", "Messages read and not yet finished (committable)", LABELS, registry=r
        ).labels(**self.labels)
        self.staged = Gauge(
            "algorunner_staged_parts", "run=false parts waiting for their trigger", LABELS, registry=r
        ).labels(**self.labels)
        self._lag = Gauge(
            "algorunner_consumer_lag",
            "Messages not yet committed by the runner's group",
            [*LABELS, "topic", "partition"],
            registry=r,
        )
        self._err = Counter("kafka_client_err_cnt", "Failed produced messages", ["topic", "error"], registry=r)

    # Per-message calls: a dict lookup and integer additions, nothing else.

    def input_bytes(self, input_name: str, status: str, message: int, data: int) -> None:
        counts = self.bytes_in.get((input_name, status))
        if counts is None:
            counts = self.bytes_in[(input_name, status)] = [0, 0]
        counts[0] += message
        counts[1] += data

    def output_bytes(self, output: str, status: str, message: int, data: int) -> None:
        counts = self.bytes_out.get((output, status))
        if counts is None:
            counts = self.bytes_out[(output, status)] = [0, 0]
        counts[0] += message
        counts[1] += data

    def retry(self, step: int, repeat: int) -> None:
        self._retry.labels(**self.labels, step=str(step), repeat=str(repeat)).inc()

    def dead_letter(self, step: int | None) -> None:
        self.dlq.inc()
        self._dlq_step.labels(**self.labels, step="none" if step is None else str(step)).inc()

    def runner_error(self, kind: str) -> None:
        self._runner_error.labels(**self.labels, kind=kind).inc()

    def message(self, input_name: str, outcome: str, n: int = 1) -> None:
        key = (input_name, outcome)
        self.outcomes[key] = self.outcomes.get(key, 0) + n

    def lag(self, topic: str, partition: int, value: int) -> None:
        self._lag.labels(**self.labels, topic=topic, partition=str(partition)).set(value)

    def ack(self, topic: str, n: int = 1) -> None:
        self.acks[topic] = self.acks.get(topic, 0) + n

    def produce_error(self, topic: str, error: str) -> None:
        self._err.labels(topic=topic, error=error).inc()
