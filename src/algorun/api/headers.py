"""The `httpHeaders` string of webhooks and flat algo inputs.

The API types it as one string; algorun accepts either a JSON object (`{"Authorization": "Bearer x"}`) or
`Name: value` pairs separated by newlines or `;`, and refuses anything else (docs/compat.md).
"""

from __future__ import annotations

import json
import re

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def parse_http_headers(text: str) -> dict[str, str]:
    """Headers from an `httpHeaders` string; raises ValueError naming the bad entry."""
    stripped = text.strip()
    if not stripped:
        return {}
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ValueError(f"httpHeaders is not valid JSON: {exc.msg}") from exc
        if not isinstance(data, dict):
            raise ValueError("httpHeaders JSON must be an object of header names to values")
        pairs = [(str(k), str(v)) for k, v in data.items()]
    else:
        pairs = []
        for entry in re.split(r"[;\n]", stripped):
            if not entry.strip():
                continue
            name, sep, value = entry.partition(":")
            if not sep:
                raise ValueError(f'httpHeaders entry "{entry.strip()}" is not "Name: value"')
            pairs.append((name.strip(), value.strip()))
    headers: dict[str, str] = {}
    for name, value in pairs:
        if not _TOKEN.match(name):
            raise ValueError(f'httpHeaders: "{name}" is not a valid header name')
        if "\r" in value or "\n" in value:
            raise ValueError(f'httpHeaders: the value of "{name}" contains a line break')
        headers[name] = value
    return headers
