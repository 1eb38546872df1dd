"""Replay dead letters: read the algo's dead-letter topic and write each message back where only this algo
reads it, error and retry state cleared, so it runs again with the full retry budget.

Target: `--to TOPIC` when given; else the algo's first retry topic (private to the algo; it keeps `errorTopic`,
so the runner knows which input the message belongs to); else the source topic the message came from (other
algos reading that topic then see it again: prefer retry topics). Without a trace filter, progress is committed
under the group `{consumerGroup}-replay`, so each dead letter is replayed once; a filter reads the whole topic
and commits nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from algorun.api.configs import RunnerConfig
from algorun.bus import contract
from algorun.bus.interface import Bus
from algorun.runner import retry as retry_routing
from algorun.runner.provenance import header_dict, replay_headers

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ReplayResult:
    replayed: int
    skipped: int
    targets: dict[str, int]


def default_target(config: RunnerConfig) -> str | None:
    """The first retry topic of the algo's strategy, or None (replay to each message's source topic)."""
    plan = retry_routing.plan(config.retry.enabled, config.retry.strategy)
    for step in plan.steps:
        topic = config.retry.retry_topics.get(step.backoff)
        if topic:
            return topic
    return next(iter(sorted(config.retry.retry_topics.values())), None)


async def replay(
    config: RunnerConfig,
    bus: Bus,
    *,
    to: str | None = None,
    trace_id: str | None = None,
    limit: int | None = None,
    idle_seconds: float = 3.0,
) -> ReplayResult:
    """Replay until the dead-letter topic has had nothing new for `idle_seconds` (or `limit` is reached)."""
    target = to or default_target(config)
    group = None if trace_id else f"{config.consumer_group}-replay"
    result = ReplayResult(0, 0, {})
    producer = bus.producer()
    consumer = bus.consumer(group, [config.retry.dead_letter_topic])
    try:
        last = time.monotonic()
        while limit is None or result.replayed < limit:
            batch = await consumer.getmany(max_messages=200, max_wait=0.5)
            if not batch:
                if time.monotonic() - last > idle_seconds:
                    break
                continue
            last = time.monotonic()
            acks = []
            for m in batch:
                hd = header_dict(m.headers)
                if (trace_id and hd.get(contract.TRACE_ID) != trace_id) or (
                    limit is not None and result.replayed >= limit
                ):
                    result.skipped += 1
                    continue
                if hd.get(contract.ERROR_VALUE_OMITTED):
                    log.warning(
                        "dead letter at offset %d was written without its value (too large); skipped: replay its "
                        "input from %s[%s]@%s",
                        m.offset,
                        hd.get(contract.ERROR_TOPIC),
                        hd.get(contract.ERROR_PARTITION),
                        hd.get(contract.ERROR_OFFSET),
                    )
                    result.skipped += 1
                    continue
                dest = target or hd.get(contract.ERROR_TOPIC)
                if not dest:
                    log.warning("dead letter at offset %d names no source topic; skipped", m.offset)
                    result.skipped += 1
                    continue
                acks.append(producer.produce(dest, m.value, key=m.key, headers=replay_headers(m.headers, time.time())))
                result.replayed += 1
                result.targets[dest] = result.targets.get(dest, 0) + 1
            await asyncio.gather(*acks)
            if group is not None:
                consumer.store(batch)
                await consumer.commit()
    finally:
        await consumer.close()
        await producer.close()
    return result
