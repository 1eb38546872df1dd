"""Webhook receivers started by the tests: `Receiver` records every request and fails on demand; `Script` answers
each request with the next of a scripted list of statuses."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]
    method: str
    path: str
    status: int
    at: float


@dataclass
class Receiver:
    """Answers `failure_status` while `failing` (until the monotonic time `fail_until`, when set), else 200.
    Every request is recorded, answered or not."""

    failing: bool = False
    failure_status: int = 503
    fail_until: float | None = None
    requests: list[Received] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        now = time.monotonic()
        failing = self.failing and (self.fail_until is None or now < self.fail_until)
        status = self.failure_status if failing else 200
        self.requests.append(Received(body, dict(request.headers), request.method, request.path, status, now))
        return web.Response(status=status, text="ok" if status < 300 else "receiver is failing on purpose")

    @property
    def accepted(self) -> list[Received]:
        return [r for r in self.requests if 200 <= r.status < 300]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class Script:
    """Answers with the next (status, headers) in `answers`; the last one repeats."""

    def __init__(self, *answers: tuple[int, dict[str, str]]) -> None:
        self.answers = list(answers)
        self.seen: list[tuple[str, dict[str, str], bytes]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((request.method, dict(request.headers), await request.read()))
        status, headers = self.answers[min(len(self.seen), len(self.answers)) - 1]
        return web.Response(status=status, headers=headers, text="nope" if status >= 300 else "ok")


async def serve_script(script: Script) -> web.AppRunner:
    """Serves `script` on a free port of 127.0.0.1 and sets its `url`; the caller cleans the runner up."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", script.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    script.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/in"  # type: ignore[union-attr]
    return runner
