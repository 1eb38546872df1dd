"""The recent dead letters of a topic, read from the data plane, with their error headers and a payload preview."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections import deque
from typing import Any

from algorun.bus import Bus, Message, contract

PREVIEW_BYTES = 2048
"""A payload longer than this is cut in the preview (the message itself is untouched)."""

_VIEW_GROUP = "algorun-console-view"
"""A group that never commits: its lag gives a topic's end offsets."""


def describe(message: Message) -> dict[str, Any]:
    """One dead letter as the page shows it: trace id, error headers, the other headers, a payload preview."""
    headers = {name: value.decode("utf-8", errors="replace") for name, value in message.headers}
    value = message.value[:PREVIEW_BYTES]
    try:
        preview = value.decode("utf-8")
        encoding = "utf-8"
    except UnicodeDecodeError:
        preview = base64.b64encode(value).decode()
        encoding = "base64"
    return {
        "topic": message.topic,
        "partition": message.partition,
        "offset": message.offset,
        "timestampMs": message.timestamp_ms,
        "traceId": headers.get(contract.TRACE_ID),
        "error": {name: headers[name] for name in sorted(contract.ERROR_HEADERS) if name in headers},
        "headers": {name: text for name, text in headers.items() if name not in contract.ERROR_HEADERS},
        "size": len(message.value),
        "preview": preview,
        "previewEncoding": encoding,
        "truncated": len(message.value) > PREVIEW_BYTES,
    }


async def recent(bus: Bus, topic: str, limit: int = 20, timeout: float = 5.0) -> list[dict[str, Any]]:  # noqa: ASYNC109
    """The last `limit` messages of `topic`, newest first: read up to the end offsets seen when called."""
    ends = {tp.partition: lag.end for tp, lag in (await bus.lag(_VIEW_GROUP, [topic])).items() if lag.end > lag.start}
    if not ends:
        return []
    kept: deque[Message] = deque(maxlen=limit)
    reached: set[int] = set()
    async with bus.consumer(None, [topic], from_beginning=True) as consumer:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while reached != set(ends):
                    for message in await consumer.getmany(max_messages=500, max_wait=0.2):
                        if message.offset < ends.get(message.partition, 0):
                            kept.append(message)
                        if message.offset + 1 >= ends.get(message.partition, 0):
                            reached.add(message.partition)
    return [describe(m) for m in sorted(kept, key=lambda m: m.timestamp_ms, reverse=True)]
