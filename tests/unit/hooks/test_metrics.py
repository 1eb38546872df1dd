"""The hook runner's per-delivery metrics are plain numbers, exported at scrape time in the usual exposition."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from algorun.hooks.metrics import HookMetrics


def _samples(m: HookMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(m.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_deliveries_durations_and_backlog_are_scraped_with_their_values() -> None:
    m = HookMetrics()
    m.deliveries.labels("r-0").inc()
    m.deliveries.labels("r-0").inc()
    m.deliveries.labels("r-1").inc()
    for seconds in (0.004, 0.005, 0.2, 900.0):
        m.request_latency.labels("r-0").observe(seconds)
    m.delivery_latency.labels("r-0").observe(0.03)
    m.backlog.labels("r-0").set(7)
    got = _samples(m)
    assert got[("algorun_hook_deliveries_total", (("hook", "r-0"),))] == 2
    assert got[("algorun_hook_deliveries_total", (("hook", "r-1"),))] == 1
    bucket = "algorun_hook_request_duration_seconds_bucket"
    assert got[(bucket, (("hook", "r-0"), ("le", "0.005")))] == 2  # a value equal to a bound is within it
    assert got[(bucket, (("hook", "r-0"), ("le", "0.25")))] == 3
    assert got[(bucket, (("hook", "r-0"), ("le", "600.0")))] == 3
    assert got[(bucket, (("hook", "r-0"), ("le", "+Inf")))] == 4
    assert got[("algorun_hook_request_duration_seconds_count", (("hook", "r-0"),))] == 4
    assert abs(got[("algorun_hook_request_duration_seconds_sum", (("hook", "r-0"),))] - 900.209) < 1e-9
    assert got[("algorun_hook_delivery_duration_seconds_bucket", (("hook", "r-0"), ("le", "0.05")))] == 1
    assert got[("algorun_hook_delivery_duration_seconds_bucket", (("hook", "r-0"), ("le", "0.025")))] == 0
    assert got[("algorun_hook_backlog", (("hook", "r-0"),))] == 7
