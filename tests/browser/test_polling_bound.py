"""The console never slows the pipeline it watches: however many pages watch and however often they ask, each
component's metrics endpoint is read at most once per the console's stated interval.

The console runs in this process over the retry-dead-letter example's plan on a real local log; the components'
/metrics pages are one real HTTP server that counts the requests to each path. Three browser pages ask for the
figures as fast as they can for a while.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from algorun.api import load_pipeline
from algorun.bus import TopicSpec, open_bus
from algorun.console.local_source import LocalSource
from algorun.console.server import ConsoleServer
from algorun.local.plan import Ports, build_plan
from algorun.local.runtime import local_bus_url
from algorun.local.supervisor import Supervisor
from tests.integration.local.harness import EXAMPLES
from tests.support.procs import free_ports

pytestmark = pytest.mark.timeout(120)

WATCH_SECONDS = 8.0
RUNNER_TEXT = "# TYPE algorunner_algo_error counter\nalgorunner_algo_error_total 1.0\n"


class Console:
    """The console and the counting metrics server, on an event loop in a thread of their own."""

    def __init__(self, state: Path) -> None:
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
        _, topology = load_pipeline([EXAMPLES / "retry-dead-letter" / "pipeline.yaml"])
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


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    watched = Console(tmp_path)
    watched.thread.start()
    watched.run(watched.start())
    try:
        yield watched
    finally:
        watched.run(watched.stop())
        watched.loop.call_soon_threadsafe(watched.loop.stop)
        watched.thread.join(10)


HAMMER = """async ([path, seconds]) => {
    const until = Date.now() + seconds * 1000;
    let asked = 0;
    while (Date.now() < until) { await fetch(path); asked++; }
    return asked;
}"""


def test_metrics_endpoints_are_read_at_most_once_per_interval(page: Any, console: Console) -> None:
    page.goto(console.url)
    page.wait_for_selector("[data-node-id]")
    others = [page.context.new_page() for _ in range(2)]
    for other in others:
        other.goto(console.url)
    figures = "/api/pipelines/shop/payments/figures"
    started = time.monotonic()
    pages = [page, *others]
    for each in pages:  # started together; each page's loop runs on while the next one starts
        each.evaluate(f"() => {{ window.asked = ({HAMMER})(['{figures}', {WATCH_SECONDS}]); }}")
    asked = sum(int(each.evaluate("() => window.asked")) for each in pages)
    watched = time.monotonic() - started
    bound = int(watched / console.interval) + 2  # the pages' first load, then one per interval
    assert asked > 10 * bound, "the pages did not ask often enough to test the bound"
    assert console.hits, "the console never read the components' metrics"
    for path, hits in console.hits.items():
        assert 2 <= hits <= bound, f"{path} was read {hits} times in {watched:.1f}s (interval {console.interval}s)"
