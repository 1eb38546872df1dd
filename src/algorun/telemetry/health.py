"""The health, readiness and metrics endpoints of a component.

`/health` answers 200 while the process's event loop runs (liveness). `/ready` answers 200 only when every
registered readiness check passes, else 503 with a JSON body naming what is not ready: a component with one
part down is not ready. `/metrics` serves a Prometheus registry.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

ReadinessCheck = Callable[[], str | None]
"""Returns None when ready, else the reason it is not."""


@dataclass
class Readiness:
    """Named readiness checks; a component registers one per dependency (algo reachable, partitions assigned)."""

    checks: dict[str, ReadinessCheck] = field(default_factory=dict)

    def add(self, name: str, check: ReadinessCheck) -> None:
        self.checks[name] = check

    def reasons(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for name, check in self.checks.items():
            try:
                reason = check()
            except Exception as exc:  # a failing check means "not ready", never a 500
                reason = f"check failed: {exc}"
            if reason:
                found[name] = reason
        return found


class HealthServer:
    """An aiohttp server for /health, /ready and /metrics on `host:port` (port 0 picks a free one)."""

    def __init__(
        self,
        port: int,
        readiness: Readiness | None = None,
        registry: CollectorRegistry = REGISTRY,
        host: str = "0.0.0.0",
    ) -> None:
        self.host = host
        self.requested_port = port
        self.readiness = readiness or Readiness()
        self.registry = registry
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/ready", self._ready)
        app.router.add_get("/metrics", self._metrics)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.requested_port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self.requested_port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _health(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _ready(self, _: web.Request) -> web.Response:
        reasons = self.readiness.reasons()
        body = {"ready": not reasons, "notReady": reasons}
        return web.Response(status=200 if not reasons else 503, text=json.dumps(body), content_type="application/json")

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
