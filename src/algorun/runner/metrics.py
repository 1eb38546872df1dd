"""The runner's Prometheus metrics: the original's `algorunner_*` families (names and labels kept for the chart's
dashboard, values fixed) plus what it lacked: lag, in-flight, outcomes, dead letters by step.

Fixed values: byte counters count real sizes for every message (the original added a constant 8 under an empty
input label and counted 0 for embedded data); output bytes are counted when the broker acknowledged them, not
when enqueued; `algorunner_algo_error` counts every failed run and `algorunner_runner_error` every runner-side
failure (both were dead). The registry is our own, with the process and platform collectors (resident memory).
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

from algorun.api.configs import RunnerConfig

BUCKETS = (0.005, 0.05, 0.25, 1, 2.5, 5, 7.5, 10, 20, 30)
LABELS = ("deployment", "pipeline", "component", "name", "version", "index")


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
        self.run_duration = Histogram(
            "algorunner_run_duration_seconds",
            "Time from reading a run's trigger message to its outputs (or retry/dead letter) being acknowledged",
            LABELS,
            buckets=BUCKETS,
            registry=r,
        ).labels(**self.labels)
        self.algo_duration = Histogram(
            "algorunner_algo_duration_seconds",
            "Time the algo took per run (failed runs included)",
            LABELS,
            buckets=BUCKETS,
            registry=r,
        ).labels(**self.labels)
        self._msg_in = Counter(
            "algorunner_msg_bytes_input", "Bytes of consumed message values", [*LABELS, "input", "status"], registry=r
        )
        self._data_in = Counter(
            "algorunner_data_bytes_input",
            "Bytes of input data handed to the algo (claim checks resolved)",
            [*LABELS, "input", "status"],
            registry=r,
        )
        self._msg_out = Counter(
            "algorunner_msg_bytes_output",
            "Bytes of acknowledged produced message values",
            [*LABELS, "output", "status"],
            registry=r,
        )
        self._data_out = Counter(
            "algorunner_data_bytes_output",
            "Bytes of output data the algo produced",
            [*LABELS, "output", "status"],
            registry=r,
        )
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
        self._messages = Counter(
            "algorunner_messages",
            "Consumed messages by outcome (ok, staged, retry, dead_letter)",
            [*LABELS, "input", "outcome"],
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
        self._ack = Counter("kafka_client_ack_cnt", "Acknowledged produced messages", ["topic"], registry=r)
        self._err = Counter("kafka_client_err_cnt", "Failed produced messages", ["topic", "error"], registry=r)
        self._children: dict[tuple[str, str, str], tuple[Counter, Counter]] = {}
        self._child: dict[tuple[str, str, str], Counter] = {}

    # Per-message calls: labelled children are looked up once and cached (labels() costs microseconds).

    def input_bytes(self, input_name: str, status: str, message: int, data: int) -> None:
        key = ("in", input_name, status)
        pair = self._children.get(key)
        if pair is None:
            pair = self._children[key] = (
                self._msg_in.labels(**self.labels, input=input_name, status=status),
                self._data_in.labels(**self.labels, input=input_name, status=status),
            )
        pair[0].inc(message)
        pair[1].inc(data)

    def output_bytes(self, output: str, status: str, message: int, data: int) -> None:
        key = ("out", output, status)
        pair = self._children.get(key)
        if pair is None:
            pair = self._children[key] = (
                self._msg_out.labels(**self.labels, output=output, status=status),
                self._data_out.labels(**self.labels, output=output, status=status),
            )
        pair[0].inc(message)
        pair[1].inc(data)

    def retry(self, step: int, repeat: int) -> None:
        self._retry.labels(**self.labels, step=str(step), repeat=str(repeat)).inc()

    def dead_letter(self, step: int | None) -> None:
        self.dlq.inc()
        self._dlq_step.labels(**self.labels, step="none" if step is None else str(step)).inc()

    def runner_error(self, kind: str) -> None:
        self._runner_error.labels(**self.labels, kind=kind).inc()

    def message(self, input_name: str, outcome: str) -> None:
        key = ("msg", input_name, outcome)
        child = self._child.get(key)
        if child is None:
            child = self._child[key] = self._messages.labels(**self.labels, input=input_name, outcome=outcome)
        child.inc()

    def lag(self, topic: str, partition: int, value: int) -> None:
        self._lag.labels(**self.labels, topic=topic, partition=str(partition)).set(value)

    def ack(self, topic: str) -> None:
        key = ("ack", topic, "")
        child = self._child.get(key)
        if child is None:
            child = self._child[key] = self._ack.labels(topic=topic)
        child.inc()

    def produce_error(self, topic: str, error: str) -> None:
        self._err.labels(topic=topic, error=error).inc()
