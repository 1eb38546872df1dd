"""Retry routing: given a strategy and a message's retry state, which step comes next and when. Pure.

A step is an ordered stage: `repeat` attempts with its backoff, then the next step by `index`, then the
dead-letter topic (whatever the `repeat` values of consecutive steps). `repeat: 0` counts as one attempt, as the
API documents.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from algorun.api.base import RetryStep, RetryStrategy
from algorun.api.enums import RetryStrategyKind
from algorun.api.units import parse_duration


class Mode(StrEnum):
    """Where a failed message waits for its next attempt."""

    IN_PLACE = "in-place"  # Simple: the same task waits and retries (only its partition/key lane waits)
    RETRY_TOPIC = "retry-topic"  # RetryTopics: a copy goes to the step's topic; the source offset moves on
    DEAD_LETTER = "dead-letter"  # retries disabled or no steps: straight to the dead-letter topic


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a retry strategy: `repeat` attempts, each after `backoff_seconds`."""

    index: int
    backoff: str
    backoff_seconds: float
    repeat: int


@dataclass(frozen=True, slots=True)
class Plan:
    """A strategy resolved for one input topic."""

    mode: Mode
    steps: tuple[Step, ...]

    @property
    def max_attempts(self) -> int:
        """Executions in total: the first one plus every retry."""
        return 1 + sum(s.repeat for s in self.steps)


@dataclass(frozen=True, slots=True)
class RetryState:
    """What a message's headers say about earlier retries (`retryStepIndex`, `retryNum`, `retryTimestamp`).

    `retry_num == 0` means no retry was scheduled yet (a first attempt, or a replayed message).
    """

    step_index: int = 0
    retry_num: int = 0


@dataclass(frozen=True, slots=True)
class Decision:
    """The next attempt: run again at `due` (Unix seconds) as attempt `retry_num` of step `step`."""

    step: Step
    retry_num: int
    due: float


def _steps(steps: list[RetryStep]) -> tuple[Step, ...]:
    ordered = sorted(enumerate(steps), key=lambda p: (p[1].index if p[1].index is not None else p[0], p[0]))
    return tuple(
        Step(
            index=s.index if s.index is not None else i,
            backoff=s.backoff_duration,
            backoff_seconds=parse_duration(s.backoff_duration),
            repeat=max(1, s.repeat),
        )
        for i, s in ordered
    )


def plan(enabled: bool, strategy: RetryStrategy | None, override: RetryStrategy | None = None) -> Plan:
    """The plan for a topic: its own strategy when it overrides the algo's, else the algo's.

    `enabled=False` (or no strategy, or no steps) dead-letters at once: a failed message is never dropped.
    StatefulOrdered/StatefulUnordered behave as Simple (which keeps per-key order) and RetryTopics (which does
    not) respectively.
    """
    chosen = override or strategy
    if not enabled or chosen is None or not chosen.steps:
        return Plan(Mode.DEAD_LETTER, ())
    kind = chosen.strategy
    mode = (
        Mode.RETRY_TOPIC
        if kind in (RetryStrategyKind.RETRY_TOPICS, RetryStrategyKind.STATEFUL_UNORDERED)
        else Mode.IN_PLACE
    )
    return Plan(mode, _steps(chosen.steps))


def next_attempt(p: Plan, state: RetryState, now: float) -> Decision | None:
    """The next attempt after a failure in `state`, or None when the message goes to the dead-letter topic.

    A state whose step is not in the plan (the strategy changed under a retried message) restarts at the
    first step at or after it, so a message is never stuck or dropped by a config change.
    """
    if not p.steps or p.mode is Mode.DEAD_LETTER:
        return None
    if state.retry_num <= 0:
        return Decision(p.steps[0], 1, now + p.steps[0].backoff_seconds)
    for pos, step in enumerate(p.steps):
        if step.index < state.step_index:
            continue
        if step.index == state.step_index:
            if state.retry_num < step.repeat:
                return Decision(step, state.retry_num + 1, now + step.backoff_seconds)
            if pos + 1 < len(p.steps):
                nxt = p.steps[pos + 1]
                return Decision(nxt, 1, now + nxt.backoff_seconds)
            return None
        return Decision(step, 1, now + step.backoff_seconds)
    return None
