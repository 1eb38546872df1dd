"""A circuit breaker: stop sending to a downstream that is down, and find out cheaply when it is back.

Closed: requests go through. After `fails` consecutive failures it opens: nothing is sent for `timeout` seconds.
Then it goes half-open and lets `requests` probes through: once that many succeed in a row it closes, and any
failure reopens it (sony/gobreaker's semantics, configured by the endpoint's `cb.fails`, `cb.timeout`,
`cb.requests` and `cb.interval` settings, as in the original). While closed, `interval` (seconds, 0 = never) clears the
failure count periodically. It never gives up for good: it closes again by itself once probes succeed.

Used over broker acknowledgements by the endpoint (an open breaker answers 503 at once instead of letting every
client wait for the delivery timeout) and over webhook requests by the hook runner (`algorun.webhook.circuit`).

Pure: the clock is passed in, so the state machine is tested without waiting.
"""

from __future__ import annotations

import math
from enum import StrEnum


class State(StrEnum):
    """The breaker's three states (module docstring)."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


STATE_VALUE = {State.CLOSED: 0.0, State.HALF_OPEN: 0.5, State.OPEN: 1.0}
"""The original's `kafka_cb_current_state` gauge values."""


class CircuitBreaker:
    """The breaker's state machine (module docstring). Every method takes the time from its caller, so one
    breaker serves any clock and the tests need no waiting."""

    def __init__(self, *, fails: int = 5, timeout: float = 20.0, requests: int = 3, interval: float = 0.0) -> None:
        if fails < 1:
            raise ValueError("fails must be at least 1")
        if requests < 1:
            raise ValueError("requests must be at least 1")
        if interval < 0:
            raise ValueError("interval must not be negative")
        self.fails = fails
        self.timeout = timeout
        self.requests = requests
        self.interval = interval
        self.state = State.CLOSED
        self.consecutive_failures = 0
        self.opened_at = 0.0
        self._probes = 0  # admitted since going half-open
        self._successes = 0  # consecutive, since going half-open
        self._counts_until: float | None = None  # closed with an interval: when the failure count is cleared

    def allow(self, now: float) -> bool:
        """May a request be sent now? Half-open, only `requests` probes in all."""
        if self.state is State.CLOSED:
            return True
        if self.state is State.OPEN and now - self.opened_at >= self.timeout:
            self.state = State.HALF_OPEN
            self._probes = self._successes = 0
        if self.state is State.HALF_OPEN and self._probes < self.requests:
            self._probes += 1
            return True
        return False

    def admitting(self, now: float) -> bool:
        """Would `allow` let a request through now? Unlike `allow` this changes nothing, so readiness can ask.

        An open breaker whose timeout has passed counts as admitting: it goes half-open on the next request, and a
        pod reported unready would never get that request (its Service sends it nothing), so it would stay open.
        Half-open, it admits only while a probe slot is free: with every slot taken, requests get 503 until those
        probes are answered."""
        if self.state is State.CLOSED:
            return True
        if self.state is State.OPEN:
            return now - self.opened_at >= self.timeout
        return self._probes < self.requests

    def release(self) -> None:
        """A probe that `allow` let through got no answer about the downstream's health (its sender was cancelled,
        or the request was refused for reasons of its own, e.g. too large): let another take its place, or the
        breaker would wait half-open for a result that never comes."""
        if self.state is State.HALF_OPEN and self._probes > 0:
            self._probes -= 1

    def retry_after(self, now: float) -> int:
        """Whole seconds until the breaker lets a probe through (at least 1)."""
        if self.state is State.CLOSED:
            return 1
        return max(1, math.ceil(self.timeout - (now - self.opened_at)))

    def success(self) -> None:
        self.consecutive_failures = 0
        if self.state is State.HALF_OPEN:
            self._successes += 1
            if self._successes < self.requests:
                return
        elif self.state is State.OPEN:
            return  # sent before the breaker opened: not a probe, it proves nothing about now
        self.state = State.CLOSED
        self._counts_until = None

    def recovered(self) -> None:
        """Close from any state: the downstream was found working by other means (the endpoint's log forwarder
        had a batch acknowledged), which is what the probes would have found out."""
        self.consecutive_failures = 0
        self.state = State.CLOSED
        self._counts_until = None

    def failure(self, now: float) -> None:
        expired = self._counts_until is None or now >= self._counts_until
        if self.state is State.CLOSED and self.interval and expired:
            self.consecutive_failures = 0
            self._counts_until = now + self.interval
        self.consecutive_failures += 1
        if self.state is State.HALF_OPEN or self.consecutive_failures >= self.fails:
            self.trip(now)

    def trip(self, now: float) -> None:
        """Open now (the downstream was found down by other means, e.g. the endpoint's log forwarder)."""
        if self.state is not State.OPEN:
            self.opened_at = now
        self.state = State.OPEN
