"""Notifications: POST the original's NotifMessage JSON to `<NOTIF_URL>/<Type>changed`.

Sent from one background queue, in order, after the status write that caused them succeeded, so a reconcile
never waits on the receiver. Delivery is the hook runner's (`algorun.webhook.delivery`): the same success rule
(2xx), retries with exponential backoff and jitter, timeouts, TLS verification and optional HMAC signing
(`X-Algorun-Signature`, see docs/hooks.md), so a receiver handles both kinds of webhook alike. Deletion messages
carry the deployment's identity.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import aiohttp

from algorun.api.resources import NotifMessage
from algorun.webhook.backoff import RetryPolicy
from algorun.webhook.delivery import post_json

if TYPE_CHECKING:
    from algorun.operator.settings import OperatorOptions

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0
BUDGET_S = 300.0


def url_for(base: str, message: NotifMessage) -> str:
    return f"{base.rstrip('/')}/{message.type.value}changed"


class Notifier:
    """Delivers notifications in the background; `send` never blocks and never raises.

    `attempts` bounds the tries per message (within `BUDGET_S`), `backoff` is the first delay between them.
    `secret`, when given, signs each body."""

    @classmethod
    def from_settings(cls, settings: OperatorOptions) -> Notifier:
        """The notifier the operator's settings describe (NOTIF_URL, NOTIF_SECRET)."""
        secret = settings.notif_secret.get_secret_value().encode()
        return cls(settings.notif_url, secret=secret or None)

    def __init__(
        self,
        base_url: str,
        *,
        attempts: int = 5,
        timeout: float = 10.0,
        backoff: float = 0.5,
        secret: bytes | None = None,
        verify_tls: bool = True,
    ) -> None:
        self.base_url = base_url
        self.policy = RetryPolicy(
            max_attempts=max(1, attempts), budget_s=BUDGET_S, base_s=backoff, max_delay_s=max(backoff, MAX_BACKOFF_S)
        )
        self.timeout = timeout
        self.secret = secret
        self.verify_tls = verify_tls
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
            async with asyncio.timeout(limit):
                await self._queue.join()

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
            self._session = aiohttp.ClientSession()
        while True:
            message = await self._queue.get()
            try:
                await self._deliver(message)
            except Exception:  # one bad message must not stop the notifications that follow
                self.failed += 1
                log.exception("notification %s could not be sent", message.type.value)
            finally:
                self._queue.task_done()

    async def _deliver(self, message: NotifMessage) -> None:
        url = url_for(self.base_url, message)
        outcome = await post_json(
            url,
            message.to_json(),
            secret=self.secret,
            policy=self.policy,
            timeout_s=self.timeout,
            verify_tls=self.verify_tls,
            session=self._session,
        )
        if outcome.delivered:
            self.sent += 1
        else:
            self.failed += 1
            log.warning("notification to %s failed: %s", url, outcome.error)
