"""The executor interface: start, readiness, one run per request, close. An executor whose algo never waits
may also be an `InlineExecutor`: the runner then runs its common messages inline (`runner.inline`)."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from algorun.api.configs import RunnerConfig, RunnerOutput
from algorun.api.enums import OutputDeliveryType
from algorun.runner.model import Output, Request


class Executor(abc.ABC):
    """Runs requests against one algo. `run` may be called concurrently (up to the runner's concurrency)."""

    def __init__(self, config: RunnerConfig) -> None:
        self.config = config

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Prepare (connect, spawn, import). Failing here is a configuration error."""

    async def check(self) -> str | None:
        """None when the algo can take requests now, else why not (shown by /ready)."""
        return None

    @abc.abstractmethod
    async def run(self, request: Request) -> list[Output]:
        """Run the algo once. Raises AlgoFailure (retry/dead letter) or AlgoUnavailable (wait and rerun)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and processes."""

    def output_for(self, *kinds: OutputDeliveryType, input_name: str | None = None) -> RunnerOutput | None:
        """The output that receives a response: the one named like the input first (how a pipeline pairs an input
        with its output), else the first output of one of `kinds`."""
        candidates = [o for o in self.config.outputs if o.output_delivery_type in kinds]
        if input_name is not None:
            for o in candidates:
                if o.name.lower() == input_name.lower():
                    return o
        return candidates[0] if candidates else None


@runtime_checkable
class InlineExecutor(Protocol):
    """An executor that can also run a request as a plain function call (an in-process sync callable).

    The runner calls it inline while dispatching a fetched batch: no coroutine, task or semaphore per message,
    which is most of the per-message cost when the algo itself is fast (`benchmarks/runner.py`)."""

    def sync_runner(self) -> Callable[[Request], list[Output]] | None:
        """A plain function doing what `run` does; None: always use `run`. It must raise AlgoFailure exactly as
        `run` would (never AlgoUnavailable: it cannot wait)."""

    def payload_runner(self) -> Callable[[bytes], bytes | list[Output]] | None:
        """`sync_runner` for an algo that reads nothing but the payload of a single-part run: the runner then
        builds no `Request` (and decodes no headers) for it. It returns the bytes of the first declared output
        (the common case, without an `Output` object) or the outputs. None: use `sync_runner`."""
