"""Reading the figures the console shows out of a component's Prometheus text (its /metrics page)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

COUNTERS = {
    "errors": ("algorunner_algo_error", "algorun_hook_delivery_failures", "endpoint_broker_errors"),
    "retries": ("algorunner_retry",),
    "deliveries": ("algorun_hook_deliveries",),
    "consumed": ("algorunner_messages",),
    "produced": ("kafka_client_ack_cnt", "endpoint_broker_acks"),
}
"""Console figure -> the counter families summed into it (runner, hook runner and endpoint names)."""


def counters(text: str) -> dict[str, float]:
    """Each figure of COUNTERS summed over its families' `_total` samples (so `_created` timestamps never count),
    whether or not the text declares the family's type. Families the text does not have add nothing."""
    totals: dict[str, float] = dict.fromkeys(COUNTERS, 0.0)
    wanted = {f"{family}_total": figure for figure, families in COUNTERS.items() for family in families}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            figure = wanted.get(sample.name)
            if figure is not None:
                totals[figure] += sample.value
    return totals
