"""What each consumed topic feeds: the input, its retry plan, its declared data type, and the inline path's
per-batch counters."""

from __future__ import annotations

from dataclasses import dataclass

from algorun.api.configs import RunnerConfig, RunnerInput
from algorun.api.enums import MessageDataType
from algorun.runner import retry as retry_routing


@dataclass(slots=True)
class Source:
    """`read`/`read_bytes`/`ok` count the inline path's messages until `InlinePath.flush_counts` adds them to the
    metrics once per fetched batch: metric calls per message show in `benchmarks/runner.py`."""

    input: RunnerInput
    plan: retry_routing.Plan
    file_reference: bool
    read: int = 0
    read_bytes: int = 0
    ok: int = 0


def sources_of(config: RunnerConfig) -> dict[str, Source]:
    """Each input topic's `Source` (retry topics are not sources: a retry copy names its source topic)."""
    sources: dict[str, Source] = {}
    for algo_input in config.inputs:
        for t in algo_input.topics:
            sources[t.topic] = Source(
                algo_input,
                retry_routing.plan(config.retry.enabled, config.retry.strategy, t.retry_strategy),
                t.message_data_type == MessageDataType.FILE_REFERENCE,
            )
    return sources
