"""Structured logs: one JSON object per line on stderr, with the component, its instance and the traceID of
the message being handled, so one request can be followed across every component's logs."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any


class TraceSlot:
    """A traceID for messages handled one after another, each to the end, on one thread: the runner's inline loop
    sets `TRACE_ID` to a slot once and stores each message's id in it, an attribute store where a `set`/`reset`
    pair per message cost a sixth of that loop. The loop empties the slot when it ends, so something that kept
    the context beyond it (a task an algo started) logs no traceID rather than another message's."""

    __slots__ = ("trace_id",)

    def __init__(self) -> None:
        self.trace_id: str | None = None


TRACE_ID: contextvars.ContextVar[str | TraceSlot | None] = contextvars.ContextVar("algorun_trace_id", default=None)
"""The traceID every log line of this context carries (`current_trace_id`). `trace_context` sets it for a block;
a per-message hot path may `set`/`reset` it directly (no generator), or hold a `TraceSlot` in it."""
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def current_trace_id() -> str | None:
    trace = TRACE_ID.get()
    return trace.trace_id if isinstance(trace, TraceSlot) else trace


@contextlib.contextmanager
def trace_context(trace_id: str | None) -> Iterator[None]:
    """Log lines emitted inside carry `traceID` (per asyncio task: contextvars follow tasks)."""
    token = TRACE_ID.set(trace_id)
    try:
        yield
    finally:
        TRACE_ID.reset(token)


class JsonFormatter(logging.Formatter):
    def __init__(self, component: str, instance: str | None) -> None:
        super().__init__()
        self.static = {"component": component, **({"instance": instance} if instance else {})}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **self.static,
        }
        trace = current_trace_id()
        if trace:
            entry["traceID"] = trace
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, str | int | float | bool | None) else repr(value)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(
    component: str, *, instance: str | None = None, level: str = "INFO", json_format: bool = True
) -> None:
    """Route the root logger to stderr, as JSON lines (or plain text for a terminal when `json_format` is off)."""
    handler = logging.StreamHandler(sys.stderr)
    if json_format:
        handler.setFormatter(JsonFormatter(component, instance))
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s {component} %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
