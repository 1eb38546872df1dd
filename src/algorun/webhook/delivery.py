"""Webhook delivery, reusable by any component: one signed HTTP request, retried with backoff until it
succeeds, fails permanently, or runs out of its retry budget.

The hook runner uses it for every message and webhook; the operator's status notifications
(`algorun.operator.notify`) use `post_json`, so both share one definition of success, retries and signing.

    async with aiohttp.ClientSession() as session:
        delivery = Delivery(session, RetryPolicy(budget_s=300))
        outcome = await delivery.deliver(Webhook(url, secret=b"..."), body, {"Content-Type": "application/json"})
        if not outcome.delivered: ...  # outcome.error says why (after outcome.attempts attempts)

    # or, for a one-off JSON document:
    outcome = await post_json(url, {"type": "Deployed"}, secret=b"...")

What counts as success: a 2xx answer. Retried: connection errors, timeouts, 408, 425, 429 and 5xx (a
`Retry-After` in seconds is honoured, capped by the policy). Not retried: any other status (a 4xx means the
request itself is wrong; a 3xx is not followed, since re-sending a body to another address is the receiver's
decision) and an invalid URL.
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, NamedTuple

import aiohttp
from multidict import CIMultiDict

from algorun.webhook.backoff import RetryPolicy
from algorun.webhook.circuit import Circuit
from algorun.webhook.signing import SIGNATURE_HEADER, sign

ATTEMPT_HEADER = "X-Algorun-Attempt"
RETRIABLE_STATUS = frozenset({408, 425, 429})
MAX_ERROR_BODY = 512
_RESERVED = frozenset({SIGNATURE_HEADER.lower(), ATTEMPT_HEADER.lower()})


@dataclass(frozen=True)
class Webhook:
    """Where and how to deliver. `secret` signs each body (`X-Algorun-Signature`); None sends unsigned.
    `name` labels metrics and logs."""

    url: str
    method: str = "POST"
    secret: bytes | None = None
    timeout_s: float = 10.0
    verify_tls: bool = True
    name: str = ""


class Attempt(NamedTuple):
    """One request's result. `status` is None when no HTTP answer came (network error, timeout).

    Named tuples, this and `Outcome`: one of each is built per delivery, and a frozen dataclass's `__init__`
    (a guarded `object.__setattr__` per field) cost about three times as much (`benchmarks/hooks.py`)."""

    ok: bool
    retriable: bool
    status: int | None
    error: str | None
    retry_after: float | None
    seconds: float


class Outcome(NamedTuple):
    """A delivery's end: delivered, or given up on with the last error (which goes into the dead letter)."""

    delivered: bool
    attempts: int
    status: int | None
    error: str | None
    seconds: float


AttemptCallback = Callable[[Webhook, Attempt], None]


@functools.lru_cache(maxsize=64)
def _timeout(total_s: float) -> aiohttp.ClientTimeout:
    """One (immutable) timeout object per distinct limit, not one per request."""
    return aiohttp.ClientTimeout(total=total_s)


def retry_after_seconds(value: str | None) -> float | None:
    """A `Retry-After` in seconds; an HTTP date is ignored (the backoff applies), as is anything malformed."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 and seconds == seconds else None  # also rejects NaN


def classify(status: int) -> tuple[bool, bool]:
    """(ok, retriable) for an HTTP status."""
    if 200 <= status < 300:
        return True, False
    return False, status >= 500 or status in RETRIABLE_STATUS


def request_headers(hook: Webhook, body: bytes, headers: Mapping[str, str], number: int) -> CIMultiDict[str]:
    """The headers actually sent: the caller's, minus any spoofed signature or attempt header (matched without
    case, since HTTP names are case-insensitive), plus ours."""
    sent = signed_headers(hook, body, headers)
    sent[ATTEMPT_HEADER] = str(number)
    return sent


def signed_headers(hook: Webhook, body: bytes, headers: Mapping[str, str]) -> CIMultiDict[str]:
    """`request_headers` without the attempt number: what every attempt of one delivery shares (the body, so
    its signature, does not change between attempts), built once per delivery.

    A `CIMultiDict`, aiohttp's own header type: it drops our reserved names in any case, and aiohttp takes it as
    it is where it would convert a plain dict on every request (`benchmarks/hooks.py`)."""
    sent: CIMultiDict[str] = CIMultiDict(headers)
    for name in _RESERVED:
        sent.popall(name, None)
    if hook.secret is not None:
        sent[SIGNATURE_HEADER] = sign(hook.secret, body)
    return sent


class Delivery:
    """Sends requests through one shared aiohttp session (connection reuse matters for throughput)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        policy: RetryPolicy,
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_attempt: AttemptCallback | None = None,
    ) -> None:
        self.session = session
        self.policy = policy
        self.rng = rng or random.Random()
        self.sleep = sleep
        self.on_attempt = on_attempt

    async def attempt(self, hook: Webhook, body: bytes, headers: Mapping[str, str], number: int = 1) -> Attempt:
        """One request. Never raises for network or HTTP problems: they are in the result."""
        return await self._send(hook, body, request_headers(hook, body, headers, number))

    async def _send(self, hook: Webhook, body: bytes, sent: Mapping[str, str]) -> Attempt:
        """One request with exactly the headers `sent`."""
        started = time.monotonic()
        try:
            async with self.session.request(
                hook.method,
                hook.url,
                data=body,
                headers=sent,
                timeout=_timeout(hook.timeout_s),
                allow_redirects=False,
                ssl=hook.verify_tls,
            ) as resp:
                # Read (a bounded part of) the answer: it explains failures, and an answer read to its end lets
                # aiohttp reuse the connection. A success needs neither its text nor its Retry-After.
                answer = await resp.content.read(MAX_ERROR_BODY)
                status = resp.status
                if 200 <= status < 300:
                    return Attempt(True, False, status, None, None, time.monotonic() - started)
                ok, retriable = classify(status)
                text = answer.decode("utf-8", "replace")
                return Attempt(
                    ok,
                    retriable,
                    status,
                    f"HTTP {status} {resp.reason or ''}: {text}".strip(),
                    retry_after_seconds(resp.headers.get("Retry-After")),
                    time.monotonic() - started,
                )
        except aiohttp.InvalidURL as e:
            return Attempt(False, False, None, f"invalid URL: {e}", None, time.monotonic() - started)
        except TimeoutError:  # aiohttp's timeouts subclass it
            error = f"no answer within {hook.timeout_s:g}s"
        except aiohttp.ClientError as e:
            error = f"{type(e).__name__}: {e}"
        except OSError as e:  # refused or reset outside aiohttp's wrappers
            error = f"{type(e).__name__}: {e}"
        return Attempt(False, True, None, error, None, time.monotonic() - started)

    async def deliver(
        self,
        hook: Webhook,
        body: bytes,
        headers: Mapping[str, str],
        *,
        since: float | None = None,
        gate: asyncio.Semaphore | None = None,
        circuit: Circuit | None = None,
    ) -> Outcome:
        """Attempts until success, a permanent failure, or the end of the retry budget.

        `since` (a `time.monotonic()` value) is when the budget started; default now. `gate` bounds concurrent
        requests: it is held only during a request, never during a backoff wait, so messages waiting to retry
        a down webhook do not take the places of ones that could be sent. `circuit` (the webhook's, shared by
        its deliveries) holds requests back while the webhook is found down; the budget keeps running."""
        started = time.monotonic() if since is None else since
        sent = signed_headers(hook, body, headers)  # its attempt header is set per attempt, in place
        number = 0
        while True:
            number += 1
            sent[ATTEMPT_HEADER] = str(number)
            limit: AbstractAsyncContextManager[Any] = gate if gate is not None else nullcontext()
            admitted = False
            try:
                async with limit:
                    # Asked with a place in the gate, not before: deliveries queued for a place when the circuit
                    # opens must not all go out afterwards.
                    if circuit is not None:
                        if not circuit.closed and not await circuit.admit(started + self.policy.budget_s):
                            return self._circuit_open(circuit, number - 1, started)
                        admitted = True
                    result = await self._send(hook, body, sent)
            except asyncio.CancelledError:
                if admitted and circuit is not None:
                    circuit.abandon()
                raise
            if circuit is not None:
                circuit.record(not result.ok and result.retriable, result.error)
            if self.on_attempt is not None:
                self.on_attempt(hook, result)
            elapsed = time.monotonic() - started
            if result.ok:
                return Outcome(True, number, result.status, None, elapsed)
            wait = self.policy.delay(number, self.rng, result.retry_after)
            if not result.retriable or self.policy.gives_up(number, elapsed, wait):
                why = "not retriable" if not result.retriable else "retry budget exhausted"
                error = f"{result.error} ({why} after {number} attempt{'s' if number > 1 else ''})"
                return Outcome(False, number, result.status, error, elapsed)
            await self.sleep(wait)

    @staticmethod
    def _circuit_open(circuit: Circuit, attempts: int, started: float) -> Outcome:
        """The budget ran out while the webhook's circuit was open (or a probe was out)."""
        plural = "s" if attempts != 1 else ""
        error = (
            f"{circuit.last_error or 'the webhook is failing'} (circuit open: retry budget exhausted after "
            f"{attempts} attempt{plural} of this message)"
        )
        return Outcome(False, attempts, None, error, time.monotonic() - started)


async def post_json(
    url: str,
    payload: Any,
    *,
    secret: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    policy: RetryPolicy | None = None,
    timeout_s: float = 10.0,
    verify_tls: bool = True,
    session: aiohttp.ClientSession | None = None,
) -> Outcome:
    """Deliver one JSON document (e.g. a pipeline status notification) with signing and retries.

    Pass a long-lived `session` when sending many; without one, a session is opened for this call."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    hook = Webhook(url, "POST", secret, timeout_s, verify_tls)
    sent = {"Content-Type": "application/json", **(headers or {})}
    chosen = policy or RetryPolicy(budget_s=60)
    if session is not None:
        return await Delivery(session, chosen).deliver(hook, body, sent)
    async with aiohttp.ClientSession() as own:
        return await Delivery(own, chosen).deliver(hook, body, sent)
