"""The chart's files read and parsed (values, Chart.yaml, the seed values table), for its unit and integration tests."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from tests.support.paths import CHART, TESTS

SEED_TABLE = TESTS / "unit" / "chart" / "seed_values_table.md"

# Keys whose seed defaults name the original project's images; ours name algorun's image instead.
IMAGE_KEYS = frozenset(
    {
        "image",
        "algoRunnerImage.repository",
        "algoRunnerImage.tag",
        "endpointImage.repository",
        "endpointImage.tag",
        "eventHookImage.repository",
        "eventHookImage.tag",
    }
)


@dataclass(frozen=True)
class TableRow:
    key: str
    type: str
    default: str
    description: str


def parse_table(markdown: str) -> dict[str, TableRow]:
    """The rows of a helm-docs values table (`| Key | Type | Default | Description |`), by key."""
    rows: dict[str, TableRow] = {}
    for line in markdown.splitlines():
        if not line.startswith("| ") or line.startswith("| Key ") or line.startswith("|-"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        key, type_, default, description = cells[0], cells[1], cells[2], "|".join(cells[3:])
        rows[key] = TableRow(key, type_, default, description)
    return rows


def seed_rows() -> dict[str, TableRow]:
    return parse_table(SEED_TABLE.read_text())


def values() -> dict[str, Any]:
    data = yaml.safe_load((CHART / "values.yaml").read_text())
    assert isinstance(data, dict)
    return data


def chart_meta() -> dict[str, Any]:
    data = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert isinstance(data, dict)
    return data


def lookup(data: dict[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        assert isinstance(node, dict) and part in node, f"values.yaml has no key {dotted!r}"
        node = node[part]
    return node
