"""Waiting on a condition in async tests: poll it until true, or fail naming what did not happen (never a bare
sleep as synchronisation)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def wait_until(
    check: Callable[[], bool | Awaitable[bool]], limit: float, what: str, interval: float = 0.05
) -> None:
    """Poll `check` (sync or async) until it is true; fail naming `what` after `limit` seconds."""
    deadline = time.monotonic() + limit
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit}s waiting for {what}")
        await asyncio.sleep(interval)  # the poll interval of a condition wait


async def eventually(check: Callable[[], Awaitable[T | None]], what: str, limit: float = 20.0) -> T:
    """Poll an async check until it returns something truthy and return that; an exception counts as not yet.
    Fails after `limit` seconds naming `what` and the last value (or exception) seen."""
    deadline = time.monotonic() + limit
    last: Any = None
    while True:
        try:
            result = await check()
        except Exception as exc:
            last = exc
        else:
            if result:
                return result
            last = result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit}s waiting for {what}; last: {last!r}")
        await asyncio.sleep(0.05)  # the poll interval of a condition wait
