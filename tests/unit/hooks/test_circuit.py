"""A webhook's circuit: opens after failures in a row, holds deliveries back, probes, and releases them; and what
it changes for deliveries to a receiver that is down (far fewer requests, and the dead letter says why)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from algorun.breaker import State
from algorun.webhook.backoff import RetryPolicy
from algorun.webhook.circuit import Circuit
from algorun.webhook.delivery import Delivery, Webhook
from tests.support.hook_receiver import Script, serve_script

OPEN_S = 0.2
LATER = 30.0  # a deadline far enough away never to be the reason a wait ends


def _opened(fails: int = 3) -> tuple[Circuit, list[tuple[State, State]]]:
    changes: list[tuple[State, State]] = []
    circuit = Circuit(fails, OPEN_S, on_change=lambda old, new: changes.append((old, new)))
    for _ in range(fails):
        circuit.record(True, "HTTP 503")
    return circuit, changes


async def test_failures_in_a_row_open_it_and_an_open_circuit_admits_nothing() -> None:
    circuit = Circuit(3, OPEN_S)
    circuit.record(True, "HTTP 503")
    circuit.record(True, "HTTP 503")
    circuit.record(False)  # a success in between: the count starts again
    circuit.record(True, "HTTP 503")
    circuit.record(True, "HTTP 503")
    assert circuit.state is State.CLOSED
    circuit.record(True, "HTTP 502")
    assert circuit.state is State.OPEN
    assert circuit.last_error == "HTTP 502"
    assert not await circuit.admit(deadline=time.monotonic()), "open: a caller whose budget ends now gives up"


async def test_after_the_open_period_one_probe_goes_and_its_success_releases_every_waiter() -> None:
    circuit, changes = _opened()
    probe = await asyncio.wait_for(circuit.admit(time.monotonic() + LATER), LATER)
    assert probe and circuit.state is State.HALF_OPEN
    assert not await circuit.admit(time.monotonic()), "only one probe at a time"
    waiters = [asyncio.ensure_future(circuit.admit(time.monotonic() + LATER)) for _ in range(5)]
    await asyncio.sleep(0)  # let them start waiting (not synchronisation: they wait on the probe's result)
    assert not any(w.done() for w in waiters)
    circuit.record(False)
    assert await asyncio.wait_for(asyncio.gather(*waiters), LATER) == [True] * 5
    assert changes == [
        (State.CLOSED, State.OPEN),
        (State.OPEN, State.HALF_OPEN),
        (State.HALF_OPEN, State.CLOSED),
    ]


async def test_a_failed_probe_opens_it_again_for_a_whole_period() -> None:
    circuit, _ = _opened()
    assert await asyncio.wait_for(circuit.admit(time.monotonic() + LATER), LATER)
    circuit.record(True, "HTTP 500")
    assert circuit.state is State.OPEN
    reopened = time.monotonic()
    assert not await circuit.admit(reopened)
    assert await asyncio.wait_for(circuit.admit(time.monotonic() + LATER), LATER)
    assert time.monotonic() - reopened >= OPEN_S * 0.9  # the clock's resolution, not a wait of the test's


async def test_a_probe_that_was_never_sent_lets_another_take_its_place() -> None:
    """A delivery cancelled (e.g. its partition was revoked) after being admitted as the probe must not leave the
    circuit half-open for ever, waiting for a result that never comes."""
    circuit, _ = _opened()
    assert await asyncio.wait_for(circuit.admit(time.monotonic() + LATER), LATER)
    waiter = asyncio.ensure_future(circuit.admit(time.monotonic() + LATER))
    await asyncio.sleep(0)
    assert not waiter.done()
    circuit.abandon()
    assert await asyncio.wait_for(waiter, LATER)
    assert circuit.state is State.HALF_OPEN


async def test_a_waiter_whose_budget_ends_while_open_gives_up_then() -> None:
    circuit, _ = _opened()
    circuit.breaker.timeout = LATER  # open for longer than the caller's budget
    started = time.monotonic()
    assert not await asyncio.wait_for(circuit.admit(started + 0.1), LATER)
    assert time.monotonic() - started >= 0.09


# ---- deliveries through a circuit ----


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def _deliver_all(
    session: aiohttp.ClientSession, script: Script, circuit: Circuit | None, n: int, concurrency: int = 100
) -> list[str]:
    """`n` messages to a receiver, each with its own retries (fast backoff, a 1.5 s budget); their errors."""
    runner = await serve_script(script)
    try:
        delivery = Delivery(session, RetryPolicy(budget_s=1.5, base_s=0.02, max_delay_s=0.05))
        hook = Webhook(script.url, name="results-0")
        gate = asyncio.Semaphore(concurrency)
        outcomes = await asyncio.gather(
            *(delivery.deliver(hook, b"m%d" % i, {}, circuit=circuit, gate=gate) for i in range(n))
        )
    finally:
        await runner.cleanup()
    assert not any(o.delivered for o in outcomes)
    return [o.error or "" for o in outcomes]


async def test_a_receiver_that_is_down_gets_probes_instead_of_every_retry(session: aiohttp.ClientSession) -> None:
    without = Script((503, {}))
    await _deliver_all(session, without, None, 10)
    down = Script((503, {}))
    errors = await _deliver_all(session, down, Circuit(5, 0.5), 10)
    # 10 first attempts at most (the circuit opens on the 5th failure, the others were already sent), then one
    # probe per open period of the 1.5 s budget.
    assert len(down.seen) <= 10 + 4
    assert len(without.seen) >= 5 * len(down.seen), "without a circuit every message retries on its own"
    assert all("HTTP 503" in e and "retry budget exhausted" in e for e in errors)
    assert any("circuit open" in e for e in errors)


async def test_deliveries_queued_for_the_gate_when_it_opens_are_held_back(session: aiohttp.ClientSession) -> None:
    """Two requests at a time: when the circuit opens, the messages waiting for a place must not all go out."""
    down = Script((503, {}))
    await _deliver_all(session, down, Circuit(3, 0.5), 30, concurrency=2)
    assert len(down.seen) <= 3 + 2 + 4  # until it opens, the ones already sent, one probe per period


async def test_a_final_answer_does_not_open_the_circuit(session: aiohttp.ClientSession) -> None:
    """410 Gone is the receiver refusing one request, not being down: every message still gets its own try."""
    gone = Script((410, {}))
    circuit = Circuit(2, LATER)
    errors = await _deliver_all(session, gone, circuit, 6)
    assert len(gone.seen) == 6 and circuit.state is State.CLOSED
    assert all("not retriable" in e for e in errors)
