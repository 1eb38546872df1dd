"""Every runner query of the chart's dashboards names a series the runner really exports, with the labels it
filters and groups by (prometheus_client adds `_total` to counters, `_bucket`/`_count`/`_sum` to histograms)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from algorun.runner.metrics import RunnerMetrics
from tests.algos.configs import names, runner_config

DASHBOARDS = Path(__file__).resolve().parents[3] / "charts" / "pipeline-operator" / "dashboards"
SCRAPE_LABELS = {"namespace", "pod", "service", "job", "instance", "container", "endpoint", "le"}
"""Labels Prometheus (the ServiceMonitor's scrape) adds, or histogram bucket bounds."""

NAME = re.compile(r"\b((?:algorunner|kafka_client)_[a-zA-Z0-9_]+)\b")
NAME_REGEX = re.compile(r'__name__=~"((?:algorunner|kafka_client)[^"]*)"')
BY = re.compile(r"\bby\s*\(([^)]*)\)")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*\"")


def _exprs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        return found + [e for v in node.values() for e in _exprs(v)]
    if isinstance(node, list):
        return [e for v in node for e in _exprs(v)]
    return []


def _queries() -> list[str]:
    out: list[str] = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        out += [e for e in _exprs(dashboard) if "algorunner" in e or "kafka_client" in e]
        for var in dashboard.get("templating", {}).get("list", []):
            query = var.get("query")
            text = query.get("query") if isinstance(query, dict) else query
            if isinstance(text, str) and "algorunner" in text:
                out.append(text)
    return out


def _exported() -> dict[str, set[str]]:
    """Series name -> its label names, with one event of every kind recorded."""
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
    series: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(generate_latest(m.registry).decode()):
        for sample in family.samples:
            series.setdefault(sample.name, set()).update(sample.labels)
    return series


def test_dashboards_have_runner_queries() -> None:
    assert len(_queries()) >= 10


def test_every_dashboard_query_matches_an_exported_series() -> None:
    series = _exported()
    problems: list[str] = []
    for query in _queries():
        wanted = set(NAME.findall(query))
        for pattern in NAME_REGEX.findall(query):
            matching = [s for s in series if re.fullmatch(pattern, s)]
            if not matching:
                problems.append(f"{query}: no exported series matches {pattern!r}")
            wanted |= set(matching[:1])
            wanted -= {n for n in wanted if pattern.startswith(n)}  # the regex's own prefix is not a name
        labels = {lbl.strip() for group in BY.findall(query) for lbl in group.split(",") if lbl.strip()}
        labels |= {lbl for lbl in MATCHER.findall(query) if lbl != "__name__"}
        for name in wanted:
            if name not in series:
                problems.append(f"{query}: {name} is not exported (exported: {sorted(series)})")
                continue
            missing = labels - series[name] - SCRAPE_LABELS
            if missing:
                problems.append(f"{query}: {name} has no label(s) {sorted(missing)}")
    assert not problems, "\n".join(problems)
