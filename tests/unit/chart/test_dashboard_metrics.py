"""Every query of the chart's Grafana dashboards names a series its component really exports, with the labels
it filters, groups and lists by.

A dashboard that queries a series nobody exports shows "No data" without any error, so a renamed metric or a
dashboard written against imagined names goes unnoticed until someone needs the graph. Each dashboard is checked
against the exposition its component serves: the component's metrics object (or registry) is built as in
production, one event of every kind is recorded so every labelled family has samples, and the `generate_latest`
text is parsed back (prometheus_client adds `_total` to counters and `_bucket`/`_count`/`_sum` to histograms,
so the parsed names are the ones Prometheus stores).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from algorun.endpoint.metrics import EndpointMetrics
from algorun.hooks.metrics import HookMetrics
from algorun.operator import metrics as operator_metrics
from algorun.runner.metrics import RunnerMetrics
from tests.support.paths import CHART
from tests.support.runner_configs import names, runner_config

DASHBOARDS = CHART / "dashboards"

SCRAPE_LABELS = frozenset({"namespace", "pod", "service", "job", "instance", "container", "endpoint"})
"""Target labels Prometheus adds when the chart's ServiceMonitors scrape: a query may use them on any series."""

GRAFANA_VARIABLES = frozenset({"__rate_interval", "__interval", "__range", "__interval_ms", "__range_s"})

Series = dict[str, set[str]]
"""Exported series name -> its label names."""


# ----- what each component exports ------------------------------------------------------------------------------


def _series(registry: CollectorRegistry) -> Series:
    """The exposition as Prometheus would store it; an empty family means an event kind was not recorded."""
    series: Series = {}
    empty: list[str] = []
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        if not family.samples:
            empty.append(family.name)
        for sample in family.samples:
            series.setdefault(sample.name, set()).update(sample.labels)
    # A family without samples hides its label names: record its event below so its queries can be checked.
    assert not empty, f"record an event for {empty} so the dashboards' queries on them are checked"
    return series


def _runner() -> Series:
    m = RunnerMetrics(runner_config(names()))
    m.input_bytes("in", "ok", 1, 1)
    m.output_bytes("out", "ok", 1, 1)
    m.message("in", "ok")
    m.ack("t")
    m.algo_duration.observe(0.1)
    m.run_duration.observe(0.1)
    m.algo_error.inc()
    m.retry(1, 1)
    m.dead_letter(1)
    m.runner_error("internal")
    m.lag("t", 0, 3)
    m.produce_error("t", "ProduceFailed")
    return _series(m.registry)


def _endpoint() -> Series:
    m = EndpointMetrics()
    m.answered("http", "in", "202", 0.01)
    m.counted("grpc", "-", "unavailable")
    m.received("http", "in", 10)
    m.acknowledged("t")
    m.in_flight = lambda: 1
    m.broker_errors.labels("t", "KafkaError").inc()
    m.wal_writes.labels("t").inc()
    m.wal_forwarded.labels("t").inc()
    m.wal_messages.set(1)
    m.wal_bytes.set(1)
    m.rejected.labels("overload").inc()
    m.breaker_state.set(0)
    return _series(m.registry)


def _hooks() -> Series:
    m = HookMetrics()
    m.deliveries.labels("results-1").inc()
    m.failures.labels("results-1", "network").inc()
    m.dead_letters.labels("results-1").inc()
    m.request_latency.labels("results-1").observe(0.1)
    m.delivery_latency.labels("results-1").observe(0.1)
    m.backlog.labels("results-1").set(1)
    m.circuit_state.labels("results-1").set(1)
    m.circuit_opened.labels("results-1").inc()
    m.uncommitted.set(1)
    return _series(m.registry)


def _operator() -> Series:
    """The operator serves the default registry (`start_http_server`), process and platform collectors included.

    Its metrics are module globals shared with other tests: the counters get a zero increment (enough to create the
    labelled child), and one observation in the histogram changes no test's expectations."""
    operator_metrics.RECONCILES.labels("ok").inc(0)
    operator_metrics.RECONCILE_SECONDS.observe(0.1)
    operator_metrics.WRITES.labels("patch", "Deployment").inc(0)
    return _series(REGISTRY)


EXPORTERS: dict[str, Callable[[], Series]] = {
    "algos": _runner,
    "endpoint": _endpoint,
    "hooks": _hooks,
    "operator": _operator,
}


# ----- what each dashboard queries -------------------------------------------------------------------------------

STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
JOINING = re.compile(r"\b(?:on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^}]*)\}")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*\"S(\d+)\"")
RANGE = re.compile(r"\[[^\]]*\]")
IDENT = re.compile(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")
LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$", re.S)
VARIABLE = re.compile(r"\$\{?([a-zA-Z_][a-zA-Z0-9_]*)")
LEGEND = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")
KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}
)


@dataclass
class Selector:
    """One vector selector: a metric name, or a `__name__` matcher, and the labels it matches on."""

    name: str | None
    name_regex: str | None = None
    labels: set[str] = field(default_factory=set)


@dataclass
class Query:
    where: str
    text: str
    selectors: list[Selector]
    grouping: set[str]
    joining: set[str]
    legend: set[str]


def parse(where: str, text: str, legend: str = "") -> Query:
    """Enough PromQL for dashboards: selectors with their matchers, bare metric names, by/without labels.

    String literals are set aside first, so a regex value (`"4..|5.."`) or a Grafana variable inside one is never
    read as a name; `label_values(selector, label)` (a Grafana templating query) adds `label` to the selector."""
    strings = STRING.findall(text)
    body = text
    for i, s in enumerate(strings):
        body = body.replace(s, f'"S{i}"', 1)
    extra: set[str] = set()
    if m := LABEL_VALUES.match(body):
        body, extra = m.group(1), {m.group(2)}
    grouping = {lbl.strip() for g in GROUPING.findall(body) for lbl in g.split(",") if lbl.strip()}
    body = GROUPING.sub(" ", body)
    joining = {lbl.strip() for g in JOINING.findall(body) for lbl in g.split(",") if lbl.strip()}
    body = JOINING.sub(" ", body)
    selectors: list[Selector] = []

    def selector(m: re.Match[str]) -> str:
        sel = Selector(m.group(1))
        for label, op, index in MATCHER.findall(m.group(2)):
            if label != "__name__":
                sel.labels.add(label)
                continue
            value = strings[int(index)][1:-1]
            if op == "=":
                sel.name = value
            elif op == "=~":
                sel.name_regex = value
        selectors.append(sel)
        return " "

    body = SELECTOR.sub(selector, body)
    body = RANGE.sub(" ", body)
    for ident, call in IDENT.findall(body):
        if not call and ident not in KEYWORDS:
            selectors.append(Selector(ident))
    for sel in selectors:
        sel.labels |= extra
    return Query(where, text, selectors, grouping, joining, set(LEGEND.findall(legend)))


def _targets(node: Any, where: str) -> Iterator[tuple[str, str, str]]:
    """(where, expr, legendFormat) of every query target, nested rows included."""
    if isinstance(node, dict):
        if isinstance(node.get("expr"), str):
            yield where, node["expr"], str(node.get("legendFormat", ""))
        title = node.get("title")
        for value in node.values():
            yield from _targets(value, f"{where} / {title}".lstrip(" /") if isinstance(title, str) else where)
    elif isinstance(node, list):
        for value in node:
            yield from _targets(value, where)


def _variables(dashboard: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], str | None]]:
    for var in dashboard.get("templating", {}).get("list", []):
        query = var.get("query")
        text = query.get("query") if isinstance(query, dict) else query
        yield var["name"], var, text if isinstance(text, str) else None


def queries(name: str) -> list[Query]:
    dashboard = json.loads((DASHBOARDS / f"{name}.json").read_text())
    out = [parse(f"{name}: {where}", expr, legend) for where, expr, legend in _targets(dashboard.get("panels"), "")]
    for var_name, var, text in _variables(dashboard):
        if var.get("type") == "query" and text:
            out.append(parse(f"{name}: variable ${var_name}", text))
    return out


def problems(query: Query, series: Series) -> list[str]:
    found: list[str] = []

    def problem(message: str) -> None:
        found.append(f"{query.where}: {query.text}\n    {message}")

    if not query.selectors:
        problem("names no series")
    for sel in query.selectors:
        if sel.name_regex is not None:
            matching = [s for s in series if re.fullmatch(sel.name_regex, s)]
            if not matching:
                problem(f"no exported series matches __name__=~{sel.name_regex!r}")
        elif sel.name is None:
            problem("a selector without a metric name")
            continue
        else:
            matching = [sel.name]
        for name in matching:
            if name not in series:
                problem(f"{name} is not exported (exported: {sorted(series)})")
                continue
            missing = (sel.labels | query.grouping | query.joining) - series[name] - SCRAPE_LABELS
            if missing:
                problem(f"{name} has no label(s) {sorted(missing)} (it has {sorted(series[name])})")
    if query.legend:
        # Aggregated: only the grouping labels survive; otherwise the series' own and the scrape's labels do.
        kept = query.grouping or set(SCRAPE_LABELS).union(*(series.get(s.name or "", set()) for s in query.selectors))
        if query.legend - kept:
            problem(f"the legend uses {sorted(query.legend - kept)}, which the query does not keep")
    return found


# ----- tests ---------------------------------------------------------------------------------------------------


def test_every_dashboard_has_an_exporter_to_check_it_against() -> None:
    assert sorted(p.stem for p in DASHBOARDS.glob("*.json")) == sorted(EXPORTERS)


@pytest.mark.parametrize("name", sorted(EXPORTERS))
def test_every_dashboard_query_names_an_exported_series_with_its_labels(name: str) -> None:
    found = queries(name)
    assert len([q for q in found if "variable" not in q.where]) >= 3, "the parser found no panel queries"
    series = EXPORTERS[name]()

    errors = [p for q in found for p in problems(q, series)]

    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("name", sorted(EXPORTERS))
def test_every_variable_a_dashboard_uses_is_defined(name: str) -> None:
    dashboard = json.loads((DASHBOARDS / f"{name}.json").read_text())
    defined = {var_name for var_name, _, _ in _variables(dashboard)} | GRAFANA_VARIABLES
    texts = [e for _, e, _ in _targets(dashboard.get("panels"), "")] + [t for *_, t in _variables(dashboard) if t]
    used = {v for text in texts for v in VARIABLE.findall(text)}

    assert used <= defined, sorted(used - defined)
    for var_name, var, text in _variables(dashboard):
        if "definition" in var:  # what Grafana's editor shows; it should not disagree with what runs
            assert var["definition"] == text, var_name


def test_the_parser_reads_names_matchers_grouping_and_label_values() -> None:
    q = parse(
        "x",
        'histogram_quantile(0.5, sum by (le, path) (rate(a_bucket{namespace=~"$namespace", code=~"4..|5.."}[5m])))'
        ' / on (path) b_total + sum({__name__=~"c(_total)?", d="}"})',
        "{{path}}",
    )
    v = parse("v", 'label_values(e_total{namespace=~"$namespace"}, deployment)')

    assert [(s.name, s.name_regex, s.labels) for s in q.selectors] == [
        ("a_bucket", None, {"namespace", "code"}),
        (None, "c(_total)?", {"d"}),
        ("b_total", None, set()),
    ]
    assert q.grouping == {"le", "path"} and q.joining == {"path"} and q.legend == {"path"}
    assert [(s.name, s.labels) for s in v.selectors] == [("e_total", {"namespace", "deployment"})]
