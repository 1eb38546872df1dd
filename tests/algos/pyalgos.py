"""Python-function algos for the runner tests (executor: python)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any


def upper(data: bytes) -> bytes:
    return data.upper()


def logged_upper(data: bytes) -> bytes:
    """`upper` that logs each payload (the runner should tag the line with the message's traceID); fails on
    payloads starting with b"fail" after logging."""
    logging.getLogger("tests.algos.logged").info("handling %s", data.decode())
    if data.startswith(b"fail"):
        raise ValueError("told to fail")
    return data.upper()


def slow_upper(data: bytes) -> bytes:
    """`upper` at about 2,000 messages/s: a stream that is still flowing when a test interrupts it."""
    time.sleep(0.0005)
    return data.upper()


async def slow_async_upper(data: bytes) -> bytes:
    """`upper` after 5 ms: an async algo, so each output is written as soon as it is made (not with its whole
    fetched batch, as the synchronous short path does), and a batch takes a while."""
    await asyncio.sleep(0.005)
    return data.upper()


def repeat(data: bytes) -> bytes:
    """b"3000*a" -> 3,000 times b"a": an output of any size from a small input."""
    count, _, unit = data.partition(b"*")
    return unit * int(count)


async def repeat_async(data: bytes) -> bytes:
    """`repeat` as an async algo (the runner's general path instead of its inline one)."""
    return repeat(data)


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
