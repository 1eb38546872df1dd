"""Python-function algos for the runner tests (executor: python)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any


def upper(data: bytes) -> bytes:
    return data.upper()


def passthrough(data: bytes) -> bytes:
    return data


async def async_upper(data: bytes, context: Any) -> dict[str, bytes]:
    await asyncio.sleep(0)
    return {"out": data.upper() + f"|{context.trace_id}|{context.input}".encode()}


def poison(data: bytes) -> bytes:
    """Fails on payloads containing "poison" unless the file named by $ALGORUN_TEST_FIXED exists."""
    if b"poison" in data:
        fixed = os.environ.get("ALGORUN_TEST_FIXED")
        if not fixed or not Path(fixed).exists():
            raise ValueError("cannot digest poison")
    return data.upper()


def nothing(data: bytes) -> None:
    return None
