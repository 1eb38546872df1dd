"""The one /health, /ready and /metrics of a pod whose runner has several workers (see `workers`).

- `/health` answers 200 while the supervisor's loop runs (a worker that dies ends the supervisor, and so the pod).
- `/ready` answers 200 only when every worker's own /ready does, except that a worker whose only reason is that
  it owns no partition (`STANDBY`: more workers than partitions) counts as ready while some worker owns partitions;
  else 503 naming each worker that is not ready and why, so a pod with a worker still starting or stuck is not
  ready.
- `/metrics` is every worker's exposition merged into one (`merge_expositions`): what the pod did, as if one
  process had done it.

Why merged scrapes and not prometheus_client's multiprocess mode: that mode keeps every value in a memory-mapped
file written on each `inc`/`observe`, and serves only the library's own metric types. The runner's per-message
families are plain counters exported by a custom collector (the hot path `benchmarks/runner.py` measures), which
that mode cannot serve. A scrape of each worker's loopback endpoint costs a few requests per Prometheus scrape,
not a cost per message.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from algorun.runner.health import NO_PARTITIONS

STANDBY = {"consumer": NO_PARTITIONS}
"""A worker's /ready reasons when it runs and consumes but the group gave it no partition (more workers than
partitions): a standby member, not a fault, so it does not make the pod unready while another worker owns
partitions."""
WORKER_TIMEOUT_S = 3.0
"""How long the pod's endpoint waits for one worker's answer."""

Combine = Callable[[float, float], float]
_NOT_SUMMED: dict[str, Combine] = {
    "process_start_time_seconds": min,
    "process_max_fds": max,
    "python_info": max,
    "algorunner_consumer_lag": max,  # every worker reports the whole group's lag: the same figure, not a part
}
"""Samples that are not a worker's share of the pod's figure; every other sample (counters, histogram buckets,
sums and counts, in-flight gauges, memory and CPU) is summed over the workers."""


def _combine(sample_name: str) -> Combine:
    if sample_name.endswith("_created"):
        return min
    return _NOT_SUMMED.get(sample_name, lambda a, b: a + b)


def merge_expositions(texts: Iterable[str]) -> list[Metric]:
    """The families of several Prometheus text expositions as one: samples with the same name and labels are
    combined (summed, except `_NOT_SUMMED` and `_created` timestamps), families and samples in first-seen order."""
    families: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for text in texts:
        for fam in text_string_to_metric_families(text):
            merged = families.get(fam.name)
            if merged is None:
                merged = families[fam.name] = Metric(fam.name, fam.documentation, fam.type, fam.unit)
                values[fam.name] = {}
            table = values[fam.name]
            for s in fam.samples:
                key = (s.name, tuple(sorted(s.labels.items())))
                old = table.get(key)
                table[key] = s.value if old is None else _combine(s.name)(old, s.value)
    for name, merged in families.items():
        merged.samples = [Sample(sample, dict(labels), v) for (sample, labels), v in values[name].items()]
    return list(families.values())


class _Merged(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


def exposition(families: list[Metric]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged(families))
    return generate_latest(registry)


class PodEndpoint:
    """Serves the pod's endpoints from the workers' loopback ones. `ports()` gives each worker's health port, or
    None while that worker does not listen yet."""

    def __init__(self, ports: Callable[[], list[int | None]], workers: int) -> None:
        self._ports = ports
        self._workers = workers
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port: int | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/ready", self._ready)
        app.router.add_get("/metrics", self._metrics)
        return app

    async def start(self, host: str, port: int) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WORKER_TIMEOUT_S))
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        try:
            await site.start()
        except OSError:
            await self.stop()
            raise
        sockets = getattr(site._server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _ask(self, port: int | None, path: str) -> tuple[int, str]:
        """(status, body) of a worker's endpoint; status 0 with the reason when it does not answer."""
        if port is None:
            return 0, "not listening yet"
        assert self._session is not None
        try:
            async with self._session.get(f"http://127.0.0.1:{port}{path}") as r:
                return r.status, await r.text()
        except (aiohttp.ClientError, TimeoutError) as e:
            return 0, f"not answering: {e!r}"

    async def _all(self, path: str) -> list[tuple[int, str]]:
        ports = self._ports()
        ports += [None] * (self._workers - len(ports))
        return list(await asyncio.gather(*(self._ask(p, path) for p in ports)))

    async def _health(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "workers": self._workers})

    async def _ready(self, _: web.Request) -> web.Response:
        reasons: dict[str, Any] = {}
        standby = 0
        for index, (status, body) in enumerate(await self._all("/ready")):
            if status == 200:
                continue
            reason = _not_ready(status, body)
            if reason == STANDBY:
                standby += 1
            else:
                reasons[f"worker {index}"] = reason
        if standby == self._workers:
            reasons["consumer"] = "no partitions assigned to any worker"
        payload = {"ready": not reasons, "notReady": reasons}
        return web.Response(
            status=200 if not reasons else 503, text=json.dumps(payload), content_type="application/json"
        )

    async def _metrics(self, _: web.Request) -> web.Response:
        answers = await self._all("/metrics")
        missing = [i for i, (status, _) in enumerate(answers) if status != 200]
        if missing:  # a partial sum would look like a drop in every counter
            return web.Response(status=503, text=f"workers {missing} did not answer /metrics")
        families = merge_expositions(body for _, body in answers)
        return web.Response(body=exposition(families), headers={"Content-Type": CONTENT_TYPE_LATEST})


def _not_ready(status: int, body: str) -> Any:
    if status == 0:
        return body
    try:
        return json.loads(body).get("notReady") or body
    except (ValueError, AttributeError):
        return body
