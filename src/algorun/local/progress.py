"""How far data has flowed, read from the data plane itself: each component's backlog (what its consumer group
has not committed), what it has written, and what was dead-lettered.

`--until-idle` ends when the pipeline is quiescent. Lag alone cannot tell: between two lag reads an upstream
component can commit (lag 0) after producing into a topic whose lag was already read as 0. So quiescence is two
consecutive snapshots with no backlog anywhere *and* identical end offsets on every topic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from algorun.bus import Bus
from algorun.local.plan import LocalPlan

_VIEW_GROUP = "algorun-local-view"
"""A group that never commits: reading its 'lag' gives a topic's end offsets."""


@dataclass
class ComponentProgress:
    consumed: int = 0
    backlog: int = 0
    produced: int = 0
    dead_letters: int = 0


@dataclass
class Snapshot:
    components: dict[str, ComponentProgress] = field(default_factory=dict)
    ends: dict[str, int] = field(default_factory=dict)
    """Topic -> sum of its partitions' end offsets."""

    @property
    def backlog(self) -> int:
        return sum(c.backlog for c in self.components.values())

    @property
    def dead_letters(self) -> int:
        return sum(c.dead_letters for c in self.components.values())


def quiescent(previous: Snapshot | None, current: Snapshot) -> bool:
    """Nothing waiting anywhere, and nothing written since the previous snapshot."""
    return previous is not None and previous.backlog == 0 and current.backlog == 0 and previous.ends == current.ends


async def snapshot(bus: Bus, plan: LocalPlan) -> Snapshot:
    snap = Snapshot()
    all_topics = sorted(plan.topics)
    ends = await bus.lag(_VIEW_GROUP, all_topics)
    for tp, lag in ends.items():
        snap.ends[tp.topic] = snap.ends.get(tp.topic, 0) + (lag.end - lag.start if lag.start else lag.end)
    for watch in plan.groups:
        progress = snap.components.setdefault(watch.component, ComponentProgress())
        if not watch.topics:
            continue
        for lag in (await bus.lag(watch.group, watch.topics)).values():
            progress.backlog += lag.lag
            progress.consumed += max(0, (lag.committed or lag.start) - lag.start)
    for component, topics in plan.output_topics.items():
        progress = snap.components.setdefault(component, ComponentProgress())
        progress.produced = sum(snap.ends.get(t, 0) for t in topics)
    for topic, component in plan.dead_letter_topics.items():
        snap.components.setdefault(component, ComponentProgress()).dead_letters += snap.ends.get(topic, 0)
    return snap
