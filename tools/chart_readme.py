"""Generate a Helm chart's README.md from its README.md.gotmpl and the `# --` comments of its values.yaml.

    python tools/chart_readme.py [CHART_DIR]           # write CHART_DIR/README.md
    python tools/chart_readme.py --check [CHART_DIR]   # exit 1 when README.md is not what would be written

The conventions are helm-docs' (https://github.com/norwoodj/helm-docs), so either tool produces the table:

- `# -- text` just above a key documents it; following `# ` lines continue the text; a blank line, or any line
  that is not a comment, ends it. A documented key is one row, even when its value is a map (`image`).
- `# -- (type) text` overrides the type column; `# @default -- text` overrides the default column.
- Undocumented keys below a documented one are covered by it. Any other undocumented leaf is an error, so
  every value the chart reads is explained.
- Types are inferred from the default: bool, int, float, string, list, object; a null default is "string".
  Defaults are shown as compact JSON (`nil` for null); rows are sorted by key.

The template may use `{{ template "chart.valuesTable" . }}`, `{{ template "chart.version" . }}`,
`{{ template "chart.appVersion" . }}`, `{{ template "chart.name" . }}` and `{{ template "chart.description" . }}`.
Only PyYAML is needed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DEFAULT_CHART = Path(__file__).resolve().parents[1] / "charts" / "pipeline-operator"
GENERATED_NOTE = "<!-- Generated from README.md.gotmpl and values.yaml by tools/chart_readme.py; do not edit. -->\n"

_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_][A-Za-z0-9_.\-]*)\s*:(?:\s|$)")
_DOC = re.compile(r"^\s*# --\s?(?P<text>.*)$")
_DEFAULT = re.compile(r"^\s*# @default --\s?(?P<text>.*)$")
_TYPE = re.compile(r"^\((?P<type>[A-Za-z][A-Za-z0-9 ]*)\)\s*(?P<rest>.*)$")


class ValuesDocError(ValueError):
    """values.yaml breaks the documentation conventions (an undocumented value, a comment without a key)."""


@dataclass(frozen=True)
class Row:
    key: str
    type: str
    default: str
    description: str

    def markdown(self) -> str:
        description = self.description.replace("|", "\\|")
        return f"| {self.key} | {self.type} | {self.default} | {description} |"


def type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return "string"


def default_text(value: Any) -> str:
    if value is None:
        return "`nil`"
    return "`" + json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "`"


def _lookup(values: Any, path: tuple[str, ...]) -> Any:
    node = values
    for part in path:
        if not isinstance(node, dict) or part not in node:
            raise ValuesDocError(f"{'.'.join(path)}: documented key not found in the parsed values")
        node = node[part]
    return node


def _leaves(values: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if isinstance(values, dict) and values:
        out: list[tuple[str, ...]] = []
        for key, value in values.items():
            out += _leaves(value, (*prefix, str(key)))
        return out
    return [prefix]


def parse_rows(values_text: str) -> list[Row]:
    """The documented rows of a values.yaml text, sorted by key."""
    values = yaml.safe_load(values_text) or {}
    stack: list[tuple[int, str]] = []
    doc: list[str] | None = None
    default_override: str | None = None
    documented: dict[tuple[str, ...], tuple[str, str | None]] = {}
    for number, line in enumerate(values_text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            doc, default_override = None, None
            continue
        if stripped.startswith("#"):
            if m := _DOC.match(line):
                doc = [m.group("text").strip()]
            elif m := _DEFAULT.match(line):
                default_override = m.group("text").strip()
            elif doc is not None:
                doc.append(stripped.lstrip("#").strip())
            continue
        m = _KEY.match(line)
        if not m:  # a list item or a continuation of a value: not a key
            doc, default_override = None, None
            continue
        indent = len(m.group("indent"))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, m.group("key")))
        path = tuple(k for _, k in stack)
        if doc is not None:
            text = " ".join(part for part in doc if part)
            documented[path] = (text, default_override)
        elif default_override is not None:
            raise ValuesDocError(f"line {number}: `# @default --` without a `# --` description above it")
        doc, default_override = None, None

    rows: list[Row] = []
    for path, (text, default_override) in documented.items():
        value = _lookup(values, path)
        declared_type = None
        if m := _TYPE.match(text):
            declared_type, text = m.group("type").strip(), m.group("rest").strip()
        rows.append(
            Row(
                key=".".join(path),
                type=declared_type or type_name(value),
                default=default_override if default_override is not None else default_text(value),
                description=text,
            )
        )
    undocumented = [
        ".".join(leaf) for leaf in _leaves(values) if leaf and not any(leaf[: len(p)] == p for p in documented)
    ]
    if undocumented:
        raise ValuesDocError("undocumented values (add a `# --` comment): " + ", ".join(sorted(undocumented)))
    return sorted(rows, key=lambda r: r.key)


def values_table(rows: list[Row]) -> str:
    header = "| Key | Type | Default | Description |\n|-----|------|---------|-------------|\n"
    return header + "".join(row.markdown() + "\n" for row in rows)


def render(chart_dir: Path) -> str:
    chart = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
    template = (chart_dir / "README.md.gotmpl").read_text()
    rows = parse_rows((chart_dir / "values.yaml").read_text())
    replacements = {
        "chart.valuesTable": values_table(rows).rstrip("\n"),
        "chart.version": str(chart["version"]),
        "chart.appVersion": str(chart.get("appVersion", "")),
        "chart.name": str(chart["name"]),
        "chart.description": str(chart.get("description", "")).strip(),
    }

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in replacements:
            raise ValuesDocError(f"README.md.gotmpl: unknown template {name!r}")
        return replacements[name]

    body = re.sub(r'\{\{-?\s*template\s+"([a-zA-Z.]+)"\s+\.\s*-?\}\}', substitute, template)
    return GENERATED_NOTE + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chart", nargs="?", type=Path, default=DEFAULT_CHART, help="the chart directory")
    parser.add_argument("--check", action="store_true", help="fail when README.md is stale instead of writing")
    args = parser.parse_args(argv)
    try:
        text = render(args.chart)
    except ValuesDocError as exc:
        print(f"chart_readme: {exc}", file=sys.stderr)
        return 2
    readme = args.chart / "README.md"
    if args.check:
        if not readme.exists() or readme.read_text() != text:
            print(f"chart_readme: {readme} is stale; run `python tools/chart_readme.py`", file=sys.stderr)
            return 1
        return 0
    readme.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
