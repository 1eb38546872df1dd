"""Waiting on a condition in async tests: poll it until true, or fail naming what did not happen (never a bare
sleep as synchronisation)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


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
