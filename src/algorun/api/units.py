"""Parsers for the two unit-bearing string formats of the API: Go durations and Kubernetes quantities.

Both are validated when a spec is loaded so that a typo (`30sec`, `1.5 Gi`) is reported with its path
instead of failing later inside a runner or the API server.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_DURATION_UNITS: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h|d)")


def parse_duration(text: str) -> float:
    """Seconds in a Go-style duration (`300ms`, `1.5h`, `1h30m`); `d` (days) is accepted as well.

    A bare `0` is zero. Negative durations are refused: a backoff or timeout cannot be negative.
    Raises ValueError naming the accepted form.
    """
    s = text.strip()
    if s == "0":
        return 0.0
    if not s:
        raise ValueError("empty duration; expected a number with a unit, e.g. 30s, 5m, 1h30m")
    pos = 0
    total = 0.0
    for match in _DURATION_PART.finditer(s):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(s):
        raise ValueError(
            f'invalid duration "{text}"; expected a number with a unit (ns, us, ms, s, m, h, d), e.g. 30s, 5m, 1h30m'
        )
    return total


_QUANTITY = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(?:(Ki|Mi|Gi|Ti|Pi|Ei)|([numkMGTPE])|([eE][+-]?\d+))?$")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}


def parse_quantity(text: str | int | float) -> Decimal:
    """The value of a Kubernetes resource quantity (`500m`, `1.5Gi`, `2`, `1e3`).

    Raises ValueError for anything the API server would refuse.
    """
    s = str(text).strip()
    match = _QUANTITY.match(s)
    if not match:
        raise ValueError(f'invalid quantity "{text!s}"; expected e.g. 500m, 2, 1.5Gi, 256Mi')
    number, binary, decimal_suffix, exponent = match.groups()
    try:
        value = Decimal(number)
        if binary:
            return value * _BINARY[binary]
        if decimal_suffix:
            return value * _DECIMAL[decimal_suffix]
        if exponent:
            return value * Decimal(10) ** int(exponent[1:])
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only valid decimals
        raise ValueError(f'invalid quantity "{text!s}"') from exc
    return value
