"""What the console asks of a watched pipeline, wherever it runs (one machine, or Kubernetes)."""

from __future__ import annotations

from typing import Any, Protocol

from algorun.console.figures import Poller
from algorun.console.graph import Graph


class ActionRefused(Exception):
    """An action the page asked for cannot be done; the message says why (shown in the page, sent as a 4xx)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class PipelineSource(Protocol):
    """One pipeline as the console sees it."""

    @property
    def pipeline(self) -> str:
        """`owner/name`."""

    @property
    def graph(self) -> Graph: ...

    @property
    def poller(self) -> Poller: ...

    async def node_detail(self, node_id: str) -> dict[str, Any]:
        """The side panel of a node: resolved settings, processes, recent log lines, recent dead letters."""

    async def send(self, path: str, body: bytes, content_type: str | None) -> dict[str, Any]:
        """Post `body` into endpoint path `path`; the endpoint's answer."""

    async def replay(self, node_id: str, trace_id: str | None) -> dict[str, Any]:
        """Replay the dead letters of the algo of `node_id` (all, or one traceID) as `algorun replay` does."""
