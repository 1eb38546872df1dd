from __future__ import annotations

from decimal import Decimal

import pytest

from algorun.api.units import parse_duration, parse_quantity


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h30m", 5400), ("300ms", 0.3), ("1.5h", 5400), ("2d", 172800), ("0", 0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "30", "30 s", "30sec", "-5s", "s", "1h 30m", "1.2.3s"])
def test_bad_durations_name_the_expected_form(text: str) -> None:
    with pytest.raises(ValueError, match=r"e\.g\. 30s"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Decimal("0.5")),
        ("2", Decimal(2)),
        ("1.5Gi", Decimal(1.5 * 2**30)),
        ("1e3", Decimal(1000)),
        (3, Decimal(3)),
    ],
)
def test_quantities(text: str | int, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["1.5 Gi", "1GB", "abc", "", "1iK"])
def test_bad_quantities(text: str) -> None:
    with pytest.raises(ValueError, match="invalid quantity"):
        parse_quantity(text)
