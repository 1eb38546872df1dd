"""Retry timing of webhook deliveries: exponential backoff with jitter, bounded by attempts and a time budget.

Jitter spreads the retries of many messages to a receiver that just came back, so it is not hit by all of them
at the same instant. "Equal jitter": each delay is between half and all of the exponential step, so retries
never collapse to zero delay (a receiver that is down is not hammered) yet stay spread out.

Pure: the random source is passed in, so tests pin it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

MAX_EXPONENT = 30  # 2**30 steps: far past any max_delay_s, and keeps the float maths finite


@dataclass(frozen=True)
class RetryPolicy:
    """`max_attempts` 0 means no attempt limit (only the time budget). `budget_s` counts from when the message
    was handed to the delivery (the runner: when it was read), so a message that waited behind others does not
    get a fresh budget, and a webhook that stays down dead-letters at a predictable pace."""

    max_attempts: int = 0
    budget_s: float = 600.0
    base_s: float = 0.5
    max_delay_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 0 or self.budget_s < 0 or self.base_s <= 0 or self.max_delay_s < self.base_s:
            raise ValueError(
                "retry policy: max_attempts >= 0, budget >= 0, base > 0 and max delay >= base are required"
            )

    def step(self, attempt: int) -> float:
        """The exponential step after failed attempt `attempt` (1-based): base, 2*base, 4*base ... max_delay_s."""
        exponent = min(max(attempt, 1) - 1, MAX_EXPONENT)
        return min(self.max_delay_s, self.base_s * float(2**exponent))

    def delay(self, attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based), in [step/2, step].

        A receiver's `Retry-After` is honoured as a lower bound, capped at `max_delay_s` so a receiver cannot
        park a message beyond the policy."""
        step = self.step(attempt)
        wait = step / 2 + rng.uniform(0, step / 2)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_delay_s))
        return wait

    def gives_up(self, attempts: int, elapsed_s: float, next_delay_s: float) -> bool:
        """True when another attempt is not allowed: attempts used up, or it would start after the budget."""
        if self.max_attempts and attempts >= self.max_attempts:
            return True
        return elapsed_s + next_delay_s > self.budget_s
