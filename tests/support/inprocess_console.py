"""The console served from the test's own process over a pipeline's plan on a real local log, its components
not started; their /metrics pages are one real HTTP server that counts the requests to each path."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiohttp import web

from algorun.api import load_pipeline
from algorun.bus import TopicSpec, open_bus
from algorun.console.server import ConsoleServer
from algorun.local.console_source import LocalSource
from algorun.local.plan import Ports, build_plan
from algorun.local.runtime import local_bus_url
from algorun.local.supervisor import Supervisor
from tests.support.procs import free_ports

RUNNER_TEXT = "# TYPE algorunner_algo_error counter\nalgorunner_algo_error_total 1.0\n"


class Console:
    """The console and the counting metrics server, on an event loop in a thread of their own."""

    def __init__(self, state: Path, pipeline: Path) -> None:
        self.pipeline = pipeline
        self.hits: Counter[str] = Counter()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.state = state
        self.url = ""
        self.interval = 0.0

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    async def start(self) -> None:
        metrics_port, endpoint_port = free_ports(2)

        async def metrics(request: web.Request) -> web.Response:
            self.hits[request.path] += 1
            return web.Response(text=RUNNER_TEXT, content_type="text/plain")

        app = web.Application()
        app.router.add_get("/{component}/metrics", metrics)
        self.metrics_runner = web.AppRunner(app)
        await self.metrics_runner.setup()
        await web.TCPSite(self.metrics_runner, "127.0.0.1", metrics_port).start()
        _, topology = load_pipeline([self.pipeline])
        url = local_bus_url(self.state)
        plan = build_plan(
            topology,
            state_dir=self.state,
            workdir=self.state,
            bus_env={"ALGORUN_BUS": url},
            allocate=lambda: free_ports(1)[0],
            ports=Ports(http=endpoint_port),
        )
        self.bus = open_bus(url)
        await self.bus.create_topics([TopicSpec(name, n) for name, n in sorted(plan.topics.items())])
        supervisor = Supervisor(plan.processes, self.state / "logs")
        urls = {p.name: f"http://127.0.0.1:{metrics_port}/{i}/metrics" for i, p in enumerate(plan.processes)}
        self.source = LocalSource(topology, plan, supervisor, self.bus, Ports(), metrics_urls=urls)
        self.interval = self.source.poller.interval
        self.server = ConsoleServer([self.source])
        await self.server.start()
        self.url = self.server.url

    async def stop(self) -> None:
        await self.server.stop()
        await self.source.close()
        await self.bus.close()
        await self.metrics_runner.cleanup()


@contextmanager
def console_over(pipeline: Path, state: Path) -> Iterator[Console]:
    watched = Console(state, pipeline)
    watched.thread.start()
    watched.run(watched.start())
    try:
        yield watched
    finally:
        watched.run(watched.stop())
        watched.loop.call_soon_threadsafe(watched.loop.stop)
        watched.thread.join(10)
