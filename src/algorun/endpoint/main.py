"""Run one endpoint process until SIGTERM/SIGINT (the `algorun endpoint` command's body)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Mapping

from algorun.api.configs import EndpointConfig
from algorun.api.enums import MessageDataType
from algorun.bus import KafkaSettings, open_bus
from algorun.endpoint.claimcheck import S3PayloadStore
from algorun.endpoint.service import EndpointService, endpoint_kafka_settings
from algorun.endpoint.settings import EndpointSettings
from algorun.storage.settings import component_settings

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def payload_store(config: EndpointConfig, env: Mapping[str, str]) -> AsyncIterator[S3PayloadStore | None]:
    """S3 storage for large bodies, when a path is `FileReference` and storage is configured in `env`."""
    offloading = [p.name for p in config.paths if p.message_data_type is MessageDataType.FILE_REFERENCE]
    ident = config.identity
    settings = component_settings(env, ident.deployment_owner, ident.deployment_name) if offloading else None
    if settings is None:
        if offloading:
            log.warning(
                "paths %s are FileReference but no storage is configured (MC_HOST_algorun or AWS_*): "
                "bodies over the limit get 413",
                ", ".join(offloading),
            )
        yield None
        return
    store = S3PayloadStore(settings)
    await store.start()
    log.info("bodies over the limit on %s go to %s/%s", ", ".join(offloading), settings.host, settings.bucket)
    try:
        yield store
    finally:
        await store.close()


async def serve(config: EndpointConfig, settings: EndpointSettings, target: str | KafkaSettings) -> None:
    """Serve until a termination signal; then drain (see `EndpointService.stop`). SIGHUP renews the producer."""
    durable = isinstance(target, str) and target.startswith("local:")
    bus = open_bus(
        target if isinstance(target, str) else endpoint_kafka_settings(target, settings, config.kafka.params)
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with payload_store(config, os.environ) as store:
            service = EndpointService(config, settings, bus, durable_bus=durable, store=store)
            renewals: set[asyncio.Task[bool]] = set()

            def renew() -> None:
                task = asyncio.ensure_future(service.renew_producer())
                renewals.add(task)
                task.add_done_callback(renewals.discard)

            try:
                await service.start()
                loop.add_signal_handler(signal.SIGHUP, renew)
                await stop.wait()
                log.info("stopping: draining in-flight requests")
            finally:
                loop.remove_signal_handler(signal.SIGHUP)
                for task in list(renewals):  # a renewal under way finishes (or fails) before the drain
                    with contextlib.suppress(Exception):
                        await task
                await service.stop()
    finally:
        await bus.close()
