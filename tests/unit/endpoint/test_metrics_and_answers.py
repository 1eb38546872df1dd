"""The per-request metrics (plain counters exported at scrape time) and the hand-written 202 body."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from algorun.endpoint.http_app import _accepted_json
from algorun.endpoint.ingest import TRACE_ID_PATTERN
from algorun.endpoint.metrics import EndpointMetrics
from algorun.endpoint.publisher import Accepted


def _samples(metrics: EndpointMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_answered_requests_are_exported_as_counters_and_a_histogram() -> None:
    m = EndpointMetrics()
    m.answered("http", "in", "202", 0.003)
    m.answered("http", "in", "202", 0.2)
    m.answered("http", "unknown", "404", 0.0001)
    m.counted("grpc", "-", "not_found")
    m.received("http", "in", 1024)
    m.acknowledged("t.in", 2)
    got = _samples(m)
    assert got[("endpoint_requests_total", (("code", "202"), ("path", "in"), ("protocol", "http")))] == 2
    assert got[("endpoint_requests_total", (("code", "not_found"), ("path", "-"), ("protocol", "grpc")))] == 1
    assert got[("endpoint_request_bytes_total", (("path", "in"), ("protocol", "http")))] == 1024
    assert got[("endpoint_broker_acks_total", (("topic", "t.in"),))] == 2
    bucket = "endpoint_request_duration_seconds_bucket"
    assert got[(bucket, (("le", "0.0025"), ("path", "in"), ("protocol", "http")))] == 0
    assert got[(bucket, (("le", "0.005"), ("path", "in"), ("protocol", "http")))] == 1
    assert got[(bucket, (("le", "+Inf"), ("path", "in"), ("protocol", "http")))] == 2
    assert got[("endpoint_request_duration_seconds_count", (("path", "in"), ("protocol", "http")))] == 2
    assert got[("endpoint_in_flight_messages", ())] == 0


def test_the_in_flight_gauge_is_read_when_scraped() -> None:
    m = EndpointMetrics()
    pending = [1, 2, 3]
    m.in_flight = lambda: len(pending)
    assert _samples(m)[("endpoint_in_flight_messages", ())] == 3
    pending.clear()
    assert _samples(m)[("endpoint_in_flight_messages", ())] == 0


@given(
    trace_id=st.from_regex(TRACE_ID_PATTERN, fullmatch=True),
    topic=st.text(min_size=1, max_size=40),
    partition=st.none() | st.integers(0, 10_000),
    offset=st.none() | st.integers(0, 2**62),
    stored=st.sampled_from(["broker", "log"]),
)
def test_the_202_body_is_what_json_dumps_writes(
    trace_id: str, topic: str, partition: int | None, offset: int | None, stored: str
) -> None:
    expected = {"traceID": trace_id, "topic": topic, "partition": partition, "offset": offset, "storedIn": stored}
    body = _accepted_json(trace_id, Accepted(topic, partition, offset, stored))
    assert body == json.dumps(expected).encode()
