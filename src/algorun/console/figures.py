"""The live figures: one sample of the pipeline at most every `interval` seconds, whatever number of pages watch.

A sample is taken when a page asks and the latest one is older than the interval; pages asking meanwhile get the
latest sample. Concurrent askers share one sampling (a lock), so the data plane and the components' metrics
endpoints are read at most once per interval: watching a pipeline never slows it. Rates are the difference of
two samples' counts over the time between them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

DEFAULT_INTERVAL = 2.0
"""Seconds between two samples (the bound on how often a component's metrics endpoint is read)."""

BACKED_UP = 100
"""A step whose backlog is above this many messages is shown as backed up."""


@dataclass
class NodeSample:
    """One node's figures in a sample; None where a figure could not be read (the page shows a dash, never 0)."""

    state: str = "up"
    """up, starting, down, backed-up or idle (a topic node)."""
    reason: str | None = None
    count_in: int | None = None
    count_out: int | None = None
    backlog: int | None = None
    errors: float | None = None
    retries: float | None = None
    dead_letters: int | None = None
    ready: int | None = None
    replicas: int | None = None


@dataclass
class EdgeSample:
    """One edge's figures in a sample: messages written to its topic and what its target has not read yet."""

    count: int | None = None
    backlog: int | None = None


@dataclass
class Sample:
    """The whole pipeline's figures at one moment; rates come from two samples."""

    taken: float
    """time.monotonic() when taken."""
    nodes: dict[str, NodeSample] = field(default_factory=dict)
    edges: dict[str, EdgeSample] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    """Parts that could not be read (a component that does not answer, the data plane), said plainly."""


def _rate(now: int | float | None, before: int | float | None, seconds: float) -> float | None:
    if now is None or before is None or seconds <= 0:
        return None
    return max(0.0, (now - before) / seconds)


def figures_json(current: Sample, previous: Sample | None, interval: float) -> dict[str, Any]:
    """What the page shows: each node's and edge's counts, with rates per second against `previous`."""
    seconds = current.taken - previous.taken if previous else 0.0
    nodes: dict[str, Any] = {}
    for node_id, node in current.nodes.items():
        before = previous.nodes.get(node_id) if previous else None
        nodes[node_id] = {
            "state": node.state,
            "reason": node.reason,
            "in": node.count_in,
            "out": node.count_out,
            "rateIn": _rate(node.count_in, before.count_in if before else None, seconds),
            "rateOut": _rate(node.count_out, before.count_out if before else None, seconds),
            "backlog": node.backlog,
            "errors": node.errors,
            "retries": node.retries,
            "deadLetters": node.dead_letters,
            "ready": node.ready,
            "replicas": node.replicas,
        }
    edges: dict[str, Any] = {}
    for edge_id, edge in current.edges.items():
        before_edge = previous.edges.get(edge_id) if previous else None
        edges[edge_id] = {
            "count": edge.count,
            "backlog": edge.backlog,
            "rate": _rate(edge.count, before_edge.count if before_edge else None, seconds),
        }
    return {"intervalSeconds": interval, "nodes": nodes, "edges": edges, "problems": current.problems}


class Poller:
    """Takes a sample with `sample()` when asked, at most once per `interval`; keeps the last two for rates."""

    def __init__(self, sample: Callable[[], Awaitable[Sample]], interval: float = DEFAULT_INTERVAL) -> None:
        self._sample = sample
        self.interval = interval
        self._lock = asyncio.Lock()
        self._current: Sample | None = None
        self._previous: Sample | None = None
        self.samples_taken = 0

    async def latest(self) -> dict[str, Any]:
        async with self._lock:
            if self._current is None or time.monotonic() - self._current.taken >= self.interval:
                taken = await self._sample()
                self.samples_taken += 1
                self._previous, self._current = self._current, taken
            return figures_json(self._current, self._previous, self.interval)
