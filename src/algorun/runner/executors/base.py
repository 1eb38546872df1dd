"""The executor interface: start, readiness, one run per request, close."""

from __future__ import annotations

import abc

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
        """The output that receives a response: same name as the input first (the original's pairing), else
        the first output of one of `kinds`."""
        candidates = [o for o in self.config.outputs if o.output_delivery_type in kinds]
        if input_name is not None:
            for o in candidates:
                if o.name.lower() == input_name.lower():
                    return o
        return candidates[0] if candidates else None
