"""One webhook's circuit, shared by all its deliveries: a receiver that is down gets probes, not every retry.

Without it, each (message, webhook) retries on its own schedule, so a receiver that is down for a while gets a
steady stream of requests from every message it owes (1000 messages each retrying every 15 to 30 s, the default
backoff ceiling with its jitter, make 30 to 70 requests/s), and all of them at once when it comes back. With it,
after `fails` failed requests in a row the circuit opens: deliveries wait (their retry budgets keep running) and
nothing is sent for `open_s` seconds; then one request goes through as a probe. Its success closes the circuit
and releases the waiting deliveries (at most `concurrency` requests at a time, as always); its failure opens it
again.

What counts as a failure is what the delivery retries (no answer, 408, 425, 429, 5xx). A final answer (another
4xx) means the receiver is up and refused that request, so it counts as a success here.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from algorun.breaker import CircuitBreaker, State

StateCallback = Callable[[State, State], None]
"""Called with (old, new) on every change of state, for metrics and logs."""


class Circuit:
    def __init__(
        self,
        fails: int,
        open_s: float,
        *,
        on_change: StateCallback | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.breaker = CircuitBreaker(fails=fails, timeout=open_s, requests=1)
        self.on_change = on_change
        self.clock = clock
        self.last_error: str | None = None
        """The last failure's error, for the dead letter of a message whose budget ran out while it was open."""
        self._changed = asyncio.Event()

    @property
    def state(self) -> State:
        return self.breaker.state

    @property
    def closed(self) -> bool:
        """Closed: `admit` would let a request through at once and change nothing, so a caller may skip it."""
        return self.breaker.state is State.CLOSED

    async def admit(self, deadline: float) -> bool:
        """Wait until a request may be sent (True), or until `deadline` on `clock` (False: the caller gives up).

        While open, a caller sleeps until the open period ends; while a probe is out, until its result."""
        breaker = self.breaker
        while True:
            now = self.clock()
            before = breaker.state
            allowed = breaker.allow(now)
            self._note(before)
            if allowed:
                return True
            if now >= deadline:
                return False
            wait = deadline - now
            if breaker.state is State.OPEN:
                wait = min(wait, max(0.0, breaker.opened_at + breaker.timeout - now))
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await changed.wait()

    def record(self, failed: bool, error: str | None = None) -> None:
        """The result of a request `admit` let through."""
        before = self.breaker.state
        if failed:
            self.last_error = error
            self.breaker.failure(self.clock())
        else:
            self.breaker.success()
        self._note(before)

    def abandon(self) -> None:
        """A request `admit` let through was not sent after all (its delivery was cancelled)."""
        self.breaker.release()
        self._wake()

    def _note(self, before: State) -> None:
        after = self.breaker.state
        if after is before:
            return
        self._wake()
        if self.on_change is not None:
            self.on_change(before, after)

    def _wake(self) -> None:
        """Wake every waiter to look again; later waiters wait on a fresh event."""
        self._changed.set()
        self._changed = asyncio.Event()
