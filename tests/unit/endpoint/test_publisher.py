"""Publishing policy: when messages go to Kafka, to the write-ahead log, or are refused; order through the log.

The producer is an in-memory stand-in whose acknowledgements the test controls (the real broker is exercised
by tests/integration/endpoint); the write-ahead log is the real one on a temporary file.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from algorun.api.enums import WalMode
from algorun.breaker import CircuitBreaker
from algorun.bus.errors import BrokerUnreachable, UnknownTopic
from algorun.bus.types import Receipt
from algorun.endpoint.errors import EndpointError
from algorun.endpoint.ingest import Outgoing
from algorun.endpoint.metrics import EndpointMetrics
from algorun.endpoint.publisher import Limits, Publisher, WalPolicy
from algorun.endpoint.wal import WriteAheadLog, decode_headers, encode_headers
from tests.support.endpoint import outgoing
from tests.support.fakes import SwitchedProducer


async def _publisher(
    tmp_path: Path | None, mode: WalMode, producer: SwitchedProducer, limits: Limits | None = None
) -> Publisher:
    wal = WriteAheadLog(tmp_path / "wal.db") if tmp_path is not None else None
    p = Publisher(
        producer,
        wal=wal,
        policy=WalPolicy(mode=mode),
        breaker=CircuitBreaker(fails=1, timeout=60),
        limits=limits or Limits(),
        metrics=EndpointMetrics(),
    )
    await p.start()
    return p


async def _until(check: Callable[[], bool], limit: float = 5.0) -> None:
    """Wait for a condition on the publisher's state (it has no event for each of them), failing after `limit`."""
    async with asyncio.timeout(limit):
        while not check():  # noqa: ASYNC110 - polls the code under test's state, bounded by the timeout
            await asyncio.sleep(0.01)


async def test_direct_publish_answers_with_the_broker_position() -> None:
    producer = SwitchedProducer()
    p = await _publisher(None, WalMode.DISABLE, producer)
    accepted = await p.publish(outgoing(0))
    assert (accepted.stored, accepted.offset) == ("broker", 0)
    await p.close()


async def test_without_a_log_a_failed_delivery_is_503_and_the_breaker_answers_at_once() -> None:
    producer = SwitchedProducer()
    producer.up = False
    p = await _publisher(None, WalMode.DISABLE, producer)
    with pytest.raises(EndpointError) as first:
        await p.publish(outgoing(0))
    assert first.value.status == 503 and first.value.retry_after
    producer.up = True  # the breaker is open: the broker is not even tried
    with pytest.raises(EndpointError) as second:
        await p.publish(outgoing(1))
    assert second.value.status == 503
    assert producer.sent == []
    await p.close()


async def test_without_a_log_the_breaker_probes_after_its_timeout_and_closes_after_cb_requests_successes() -> None:
    producer = SwitchedProducer()
    now = [0.0]
    metrics = EndpointMetrics()
    p = Publisher(
        producer,
        wal=None,
        policy=WalPolicy(mode=WalMode.DISABLE),
        breaker=CircuitBreaker(fails=1, timeout=10, requests=2),
        limits=Limits(),
        metrics=metrics,
        clock=lambda: now[0],
    )
    await p.start()

    def gauge() -> float | None:
        return metrics.registry.get_sample_value("kafka_cb_current_state")

    assert gauge() == 0.0
    producer.up = False
    with pytest.raises(EndpointError):
        await p.publish(outgoing(0))
    assert gauge() == 1.0
    producer.up = True
    now[0] = 10.0
    await p.publish(outgoing(1))  # the first probe
    assert gauge() == 0.5
    await p.publish(outgoing(2))  # the second: closed
    assert gauge() == 0.0
    await p.publish(outgoing(3))
    assert len(producer.sent) == 3
    await p.close()


async def test_a_producer_swap_holds_new_publishes_until_the_old_producer_delivered_its_own() -> None:
    """Publishes during a swap wait: they go through the new producer, after the old one's last delivery, so the
    swap ends under steady load and no message overtakes an earlier one of its key."""
    old = SwitchedProducer()
    old.hold = True
    p = await _publisher(None, WalMode.DISABLE, old)
    first = asyncio.ensure_future(p.publish(outgoing(0)))
    await _until(lambda: len(old.held) == 1)
    new = SwitchedProducer()
    swap = asyncio.ensure_future(p.swap_producer(new))
    second = asyncio.ensure_future(p.publish(outgoing(1)))
    for _ in range(20):  # loop turns, not time: everything runnable has run
        await asyncio.sleep(0)
    assert len(old.held) == 1 and new.sent == [] and not swap.done()
    old.held[0].set_result(Receipt("t", 0, 0))
    assert await swap is old
    await first
    assert (await second).offset == 0  # the new producer's first message
    assert [key for _, _, key, _ in new.sent] == [b"k1"]
    await p.close()


async def test_swaps_asked_for_at_once_run_one_after_another() -> None:
    """Each swap replaces the producer the one before put in: none is dropped without being returned (and closed)."""
    old = SwitchedProducer()
    old.hold = True
    p = await _publisher(None, WalMode.DISABLE, old)
    first = asyncio.ensure_future(p.publish(outgoing(0)))
    await _until(lambda: len(old.held) == 1)
    a, b = SwitchedProducer(), SwitchedProducer()
    swap_a = asyncio.ensure_future(p.swap_producer(a))
    swap_b = asyncio.ensure_future(p.swap_producer(b))
    for _ in range(20):  # loop turns, not time: both swaps are waiting now
        await asyncio.sleep(0)
    old.held[0].set_result(Receipt("t", 0, 0))
    assert await swap_a is old
    assert await swap_b is a
    assert p.producer is b
    await first
    await p.close()


async def test_a_broker_refusal_is_not_retried_through_the_log(tmp_path: Path) -> None:
    producer = SwitchedProducer()
    producer.up = False
    producer.failure = UnknownTopic("no such topic")
    p = await _publisher(tmp_path, WalMode.FALLBACK, producer)
    with pytest.raises(EndpointError) as err:
        await p.publish(outgoing(0))
    assert err.value.status == 503
    assert p.wal is not None and p.wal.count == 0
    await p.close()


async def test_fallback_logs_during_an_outage_and_forwards_in_order_with_headers(tmp_path: Path) -> None:
    producer = SwitchedProducer()
    p = await _publisher(tmp_path, WalMode.FALLBACK, producer)
    assert (await p.publish(outgoing(0))).stored == "broker"
    producer.up = False
    stored = [(await p.publish(outgoing(i))).stored for i in range(1, 6)]
    assert stored == ["log"] * 5
    assert p.diverting
    producer.up = True
    # Still diverting until the log is empty: a new message queues behind the logged ones.
    assert (await p.publish(outgoing(6))).stored == "log"
    await _until(lambda: not p.diverting)
    assert [v for _, v, _, _ in producer.sent] == [f"v{i}".encode() for i in range(7)]
    assert [k for _, _, k, _ in producer.sent] == [f"k{i}".encode() for i in range(7)]
    assert producer.sent[3][3] == [("traceID", b"k3")]
    assert (await p.publish(outgoing(7))).stored == "broker"
    await p.close()


async def test_a_message_still_on_its_way_is_not_overtaken_by_logged_ones(tmp_path: Path) -> None:
    producer = SwitchedProducer()
    p = await _publisher(tmp_path, WalMode.FALLBACK, producer)
    producer.hold = True
    slow = asyncio.ensure_future(p.publish(outgoing(0)))  # on its way to Kafka
    await _until(lambda: len(producer.held) == 1)
    p.diverting = True  # e.g. another message just failed
    producer.hold = False
    assert (await p.publish(outgoing(1))).stored == "log"
    await asyncio.sleep(0.1)
    assert producer.sent == []  # the forwarder waits for message 0
    producer.held[0].set_exception(BrokerUnreachable("timed out"))
    assert (await slow).stored == "log"
    await _until(lambda: len(producer.sent) == 2)
    assert [v for _, v, _, _ in producer.sent] == [b"v0", b"v1"]
    await p.close()


async def test_always_mode_answers_from_the_log_and_forwards(tmp_path: Path) -> None:
    producer = SwitchedProducer()
    p = await _publisher(tmp_path, WalMode.ALWAYS, producer)
    assert [(await p.publish(outgoing(i))).stored for i in range(3)] == ["log"] * 3
    wal = p.wal
    assert wal is not None
    await _until(lambda: wal.count == 0)  # deleted once acknowledged, after the send
    assert [v for _, v, _, _ in producer.sent] == [b"v0", b"v1", b"v2"]
    await p.close()


async def test_the_log_survives_a_restart_and_is_forwarded_first(tmp_path: Path) -> None:
    producer = SwitchedProducer()
    producer.up = False
    p = await _publisher(tmp_path, WalMode.ALWAYS, producer)
    for i in range(3):
        await p.publish(outgoing(i))
    await p.close(drain_timeout=0.1)
    again = SwitchedProducer()
    q = await _publisher(tmp_path, WalMode.FALLBACK, again)
    assert q.diverting
    assert (await q.publish(outgoing(3))).stored == "log"
    await _until(lambda: len(again.sent) == 4)
    assert [v for _, v, _, _ in again.sent] == [b"v0", b"v1", b"v2", b"v3"]
    await q.close()


async def test_beyond_the_in_flight_limit_requests_get_429() -> None:
    producer = SwitchedProducer()
    producer.hold = True
    p = await _publisher(None, WalMode.DISABLE, producer, Limits(max_in_flight=2))
    waiting = [asyncio.ensure_future(p.publish(outgoing(i))) for i in range(2)]
    await _until(lambda: len(producer.held) == 2)
    with pytest.raises(EndpointError) as err:
        await p.publish(outgoing(9))
    assert err.value.status == 429 and err.value.retry_after == 1
    for i, fut in enumerate(producer.held):
        fut.set_result(Receipt("t", 0, i))
    await asyncio.gather(*waiting)
    await p.close()


async def test_a_full_log_refuses_with_503(tmp_path: Path) -> None:
    producer = SwitchedProducer()
    wal = WriteAheadLog(tmp_path / "wal.db", max_bytes=10)
    p = Publisher(
        producer,
        wal=wal,
        policy=WalPolicy(mode=WalMode.ALWAYS),
        breaker=CircuitBreaker(),
        limits=Limits(),
        metrics=EndpointMetrics(),
    )
    producer.up = False
    await p.start()
    big = Outgoing("t", b"k", b"x" * 50, [], "k")
    with pytest.raises(EndpointError) as err:
        await p.publish(big)
    assert err.value.status == 503
    await p.close(drain_timeout=0.1)


def test_per_topic_wal_overrides() -> None:
    policy = WalPolicy(mode=WalMode.DISABLE, always_topics=frozenset({"a"}), disable_topics=frozenset({"b"}))
    assert policy.mode_for("a") is WalMode.ALWAYS
    assert policy.mode_for("b") is WalMode.DISABLE
    assert policy.mode_for("c") is WalMode.DISABLE
    assert policy.needs_log(["c", "a"]) and not policy.needs_log(["b", "c"])


def test_header_codec_keeps_order_duplicates_and_bytes() -> None:
    headers = [("a", b"1"), ("b", b"\x00\xff"), ("a", b""), ("é", b"x")]
    assert decode_headers(encode_headers(headers)) == headers
    assert decode_headers(encode_headers([])) == []
