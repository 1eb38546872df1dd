"""Run the hook runner until SIGTERM/SIGINT (the `algorun hook` command's body)."""

from __future__ import annotations

import asyncio
import signal

import aiohttp

from algorun.api.configs import HookConfig
from algorun.bus import KafkaSettings, open_bus
from algorun.hooks.metrics import HookMetrics
from algorun.hooks.service import HookRunner
from algorun.hooks.settings import HookSettings
from algorun.telemetry import HealthServer, Readiness


async def serve(config: HookConfig, settings: HookSettings, target: str | KafkaSettings) -> None:
    """Health first (so probes answer while the consumer joins), then consume until a signal, then drain."""
    bus = open_bus(target)
    metrics = HookMetrics()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # One pool for every webhook; per-host limits are the runner's gates, not the connector's.
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        runner = HookRunner(config, settings, bus, session, metrics=metrics)
        readiness = Readiness()
        readiness.add("consumer", runner.not_ready_reason)
        health = HealthServer(settings.monitoring_port, readiness, metrics.registry, host=settings.monitoring_host)
        await health.start()
        try:
            await runner.run(stop)
        finally:
            await health.stop()
            await bus.close()
