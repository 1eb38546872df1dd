"""What crosses the executor boundary: a request (one run of the algo) and its outputs, and the two ways a run
can fail. Executors never see Kafka types, so each can be tested against a real algo without a broker."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from algorun.api.base import Param
from algorun.api.configs import RunnerInput


@dataclass(slots=True)
class Part:
    """One staged part of a run: the payload bytes (claim checks already resolved) and its metadata."""

    data: bytes
    content_type: str | None = None
    file_name: str | None = None


@dataclass(slots=True)
class Request:
    """One run: every part staged for `trace_id` on `input`, in arrival order (a run=true message ends it)."""

    trace_id: str
    input: RunnerInput
    parts: list[Part]
    parameters: list[Param] = field(default_factory=list)
    endpoint_params: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return sum(len(p.data) for p in self.parts)


@dataclass(slots=True)
class Output:
    """One result for output `name`: bytes in memory, or a file the algo wrote (read when produced)."""

    name: str
    data: bytes | None = None
    path: Path | None = None
    content_type: str | None = None
    file_name: str | None = None

    def payload(self) -> bytes:
        if self.data is not None:
            return self.data
        if self.path is not None:
            return self.path.read_bytes()
        return b""


class AlgoFailure(Exception):
    """The algo ran and failed (non-2xx, non-zero exit, exception, timeout): retried, then dead-lettered."""

    def __init__(self, message: str, error_type: str = "AlgoError") -> None:
        super().__init__(message)
        self.error_type = error_type


MAX_BROKEN_RUNS = 3
"""Runs of one message whose connection broke while the algo stayed reachable, before that is its failure."""


class AlgoUnavailable(Exception):
    """The algo could not be reached (connection refused, process cannot start). Not the message's fault:
    the runner waits until the algo is back and runs the same message again, without using a retry.

    `broke` is set when a connection broke mid-request and the algo answered a connection right after: an algo
    whose process is ending can still accept connections for a moment, so that is not yet the message's fault;
    after MAX_BROKEN_RUNS such runs of one message it is, and `broke` is raised (retried, then dead-lettered)."""

    def __init__(self, message: str, *, broke: AlgoFailure | None = None) -> None:
        super().__init__(message)
        self.broke = broke
