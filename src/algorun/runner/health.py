"""The runner's health: whether the algo answers (checked at start, then every `ALGO_CHECK_INTERVAL_S`, and
while a run waits for an unreachable algo), and the consumer lag as a metric."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from algorun.bus.interface import Bus
from algorun.runner.executors.base import Executor
from algorun.runner.metrics import RunnerMetrics

log = logging.getLogger(__name__)

READY_POLL_S = 0.5
"""The wait between checks while the algo does not answer."""
ALGO_CHECK_INTERVAL_S = 2.0
LAG_INTERVAL_S = 15.0
NO_PARTITIONS = "no partitions assigned"
"""The consumer's /ready reason when the group gave this runner no partition: the pod's endpoint of several
workers (`pod_endpoint`) reads it as a standby worker, not a fault, so both read this one text."""


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()


class AlgoHealth:
    """`reason` is why the algo is not ready (None when it is); a change is logged once."""

    def __init__(self, executor: Executor) -> None:
        self._executor = executor
        self.reason: str | None = "not checked yet"

    async def check(self) -> str | None:
        try:
            reason = await self._executor.check()
        except Exception as e:  # a failing check means "not ready"
            reason = f"check failed: {e}"
        if reason != self.reason:
            if reason:
                log.warning("algo not ready: %s", reason)
            else:
                log.info("algo ready")
        self.reason = reason
        return reason

    def unavailable(self, reason: str) -> None:
        """A run found the algo unreachable."""
        if reason != self.reason:
            log.warning("algo unavailable, waiting: %s", reason)
        self.reason = reason

    async def wait_ready(self, stop: asyncio.Event) -> bool:
        """Wait until the algo answers; False if `stop` came first."""
        while await self.check() is not None:
            await _wait(stop, READY_POLL_S)
            if stop.is_set():
                return False
        return True

    async def wait_after_unavailable(self) -> None:
        """Wait before a run tries again, even when the check passes at once: a request can fail where a
        connection succeeds, and trying again at once would spin."""
        await asyncio.sleep(READY_POLL_S)
        while await self.check() is not None:  # noqa: ASYNC110 - polling the algo itself
            await asyncio.sleep(READY_POLL_S)

    async def monitor(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.check()
            await _wait(stop, ALGO_CHECK_INTERVAL_S)


async def monitor_lag(bus: Bus, group: str, topics: Sequence[str], metrics: RunnerMetrics, stop: asyncio.Event) -> None:
    """The consumer group's lag per partition into the metrics, every `LAG_INTERVAL_S`."""
    while not stop.is_set():
        try:
            for tp, lag in (await bus.lag(group, topics)).items():
                metrics.lag(tp.topic, tp.partition, lag.lag)
        except Exception as e:
            log.debug("lag query failed: %s", e)
        await _wait(stop, LAG_INTERVAL_S)
