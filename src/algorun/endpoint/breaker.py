"""A circuit breaker over broker acknowledgements: stop making clients wait for a broker that is down.

Closed: messages go to Kafka. After `fails` consecutive failed deliveries it opens: without a write-ahead log
the endpoint answers 503 at once (with `Retry-After` = the time left) instead of letting every client wait for
the delivery timeout. After `timeout` seconds it lets one probe through (half-open); a success closes it, a
failure reopens it. Unlike the original, an open breaker never marks the process unhealthy for good (that made
Kubernetes restart the pod and lose librdkafka's queue): it closes again by itself.

Pure: the clock is passed in, so the state machine is tested without waiting.
"""

from __future__ import annotations

import math
from enum import StrEnum


class State(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


STATE_VALUE = {State.CLOSED: 0.0, State.HALF_OPEN: 0.5, State.OPEN: 1.0}
"""The original's `kafka_cb_current_state` gauge values."""


class CircuitBreaker:
    def __init__(self, *, fails: int = 5, timeout: float = 20.0) -> None:
        if fails < 1:
            raise ValueError("fails must be at least 1")
        self.fails = fails
        self.timeout = timeout
        self.state = State.CLOSED
        self.consecutive_failures = 0
        self.opened_at = 0.0
        self._probing = False

    def allow(self, now: float) -> bool:
        """May a message be sent to the broker now? In half-open state only one probe at a time."""
        if self.state is State.CLOSED:
            return True
        if self.state is State.OPEN and now - self.opened_at >= self.timeout:
            self.state = State.HALF_OPEN
            self._probing = False
        if self.state is State.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def retry_after(self, now: float) -> int:
        """Whole seconds until the breaker lets a probe through (at least 1)."""
        if self.state is State.CLOSED:
            return 1
        return max(1, math.ceil(self.timeout - (now - self.opened_at)))

    def success(self) -> None:
        self.state = State.CLOSED
        self.consecutive_failures = 0
        self._probing = False

    def failure(self, now: float) -> None:
        self.consecutive_failures += 1
        if self.state is State.HALF_OPEN or self.consecutive_failures >= self.fails:
            if self.state is not State.OPEN:
                self.opened_at = now
            self.state = State.OPEN
            self._probing = False

    def trip(self, now: float) -> None:
        """Open now (the broker was found down by other means, e.g. the log forwarder)."""
        if self.state is not State.OPEN:
            self.opened_at = now
        self.state = State.OPEN
        self._probing = False
