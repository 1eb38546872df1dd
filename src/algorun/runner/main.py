"""Run one runner process until SIGTERM/SIGINT (the `algorun runner` command's body)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from algorun.api.configs import RunnerConfig
from algorun.bus import KafkaSettings, open_bus
from algorun.bus.interface import Bus
from algorun.runner.config import RunnerOptions
from algorun.runner.executors import create
from algorun.runner.service import Runner
from algorun.runner.workers import follow_supervisor, report_port, supervise
from algorun.telemetry import HealthServer

log = logging.getLogger("algorun.runner")


def open_runner_bus(config: RunnerConfig, url: str | None, options: RunnerOptions | None = None) -> Bus:
    """The bus of `--bus URL`, else Kafka from the environment (KAFKA_BROKERS, KAFKA_TLS, KAFKA_AUTH_*).

    The options' `session_timeout_ms` shortens how long a crashed runner keeps its partitions (librdkafka's
    default is 45 s); `group_instance_id` turns on static membership (a restarted pod with the same id gets its
    partitions back without a rebalance). Without `options`, they are read from the environment.
    """
    consumer = (options or RunnerOptions.from_env(config=config)).consumer_config()
    if url and not url.startswith("kafka://"):
        return open_bus(url)
    if url:
        settings = KafkaSettings(bootstrap_servers=url.split("://", 1)[1].strip("/"))
    else:
        env = dict(os.environ)
        if not env.get("KAFKA_BROKERS") and config.kafka.brokers:
            env["KAFKA_BROKERS"] = config.kafka.brokers
        settings = KafkaSettings.from_env(env)
    if consumer:
        settings = settings.model_copy(update={"consumer_config": {**settings.consumer_config, **consumer}})
    return open_bus(settings)


async def serve(config: RunnerConfig, options: RunnerOptions) -> int:
    """Health first (so probes answer while the algo starts), then run until a signal, then drain. The exit
    code: 0 after a drain, 2 when the bus or the executor cannot be set up, 3 when an internal error stopped
    the runner (its message is read again after the restart the exit causes).

    With `workers` > 1 this process is the supervisor of that many runner processes (`workers.supervise`)."""
    if options.workers != 1:
        return await supervise(config, options)
    follow_supervisor()
    try:
        bus = open_runner_bus(config, options.bus)
        executor = create(config, options)
    except Exception as e:
        log.error("cannot start: %s", e)
        return 2
    runner = Runner(config, options, bus, executor)
    health = HealthServer(options.health_port, runner.readiness, runner.metrics.registry, host=options.health_host)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await health.start()
    report_port(health.port)
    log.info("runner of %s (%s) started; health on :%s", config.full_name, config.executor.value, health.port)
    try:
        await runner.run(stop)
    finally:
        await health.stop()
        await bus.close()
    if runner.failed:
        log.error("runner stopped: %s", runner.failed)
        return 3
    log.info("runner stopped")
    return 0
