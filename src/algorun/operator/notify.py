"""Notifications: POST the original's NotifMessage JSON to `<NOTIF_URL>/<Type>changed`.

Sent from one background queue, in order, after the status write that caused them succeeded, so a reconcile
never waits on the receiver. Each message is retried with backoff (the original sent once, without a timeout,
with TLS verification off, and disabled notifications for the whole process if the URL was empty at the first
try). Deletion messages carry the deployment's identity (the original's carried none).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiohttp

from algorun.api.resources import NotifMessage

log = logging.getLogger(__name__)


def url_for(base: str, message: NotifMessage) -> str:
    return f"{base.rstrip('/')}/{message.type.value}changed"


class Notifier:
    """Delivers notifications in the background; `send` never blocks and never raises."""

    def __init__(self, base_url: str, *, attempts: int = 5, timeout: float = 10.0, backoff: float = 0.5) -> None:
        self.base_url = base_url
        self.attempts = attempts
        self.timeout = timeout
        self.backoff = backoff
        self.sent = 0
        self.failed = 0
        self._queue: asyncio.Queue[NotifMessage] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.base_url)

    def send(self, messages: list[NotifMessage]) -> None:
        if not self.enabled:
            return
        for message in messages:
            self._queue.put_nowait(message)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="algorun-notifier")

    async def drain(self, limit: float = 30.0) -> None:
        """Wait (at most `limit` seconds) until every queued message was delivered or given up on."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), limit)

    async def close(self) -> None:
        await self.drain(5.0)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._session is not None:
            await self._session.close()

    async def _run(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        while True:
            message = await self._queue.get()
            try:
                await self._deliver(message)
            finally:
                self._queue.task_done()

    async def _deliver(self, message: NotifMessage) -> None:
        assert self._session is not None
        url = url_for(self.base_url, message)
        body = message.to_json()
        for attempt in range(1, self.attempts + 1):
            try:
                async with self._session.post(url, json=body) as response:
                    if response.status < 500 and response.status != 429:
                        if response.status >= 400:
                            log.warning("notification to %s refused with HTTP %s", url, response.status)
                        self.sent += 1
                        return
                    problem = f"HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = str(exc) or type(exc).__name__
            if attempt < self.attempts:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
        self.failed += 1
        log.warning("notification to %s failed after %d attempts: %s", url, self.attempts, problem)
