"""Refusals for good (too large, unknown topic, not authorised): answers, never outages.

A half-open breaker must not wait forever for a probe the broker (or librdkafka) refused; a message the producer
will never send must be refused with 413 before it is logged; a logged record the broker refuses for good must
be set aside, not block the records behind it. The producer is the in-memory stand-in of test_publisher.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaException
from confluent_kafka import Producer as KafkaClient

from algorun.api.enums import WalMode
from algorun.breaker import CircuitBreaker, State
from algorun.bus.errors import BusError, MessageTooLarge, NotAuthorized, UnknownTopic
from algorun.bus.kafka.record_size import kafka_record_size
from algorun.bus.types import Headers
from algorun.endpoint.errors import Code, EndpointError
from algorun.endpoint.ingest import Outgoing
from algorun.endpoint.metrics import EndpointMetrics
from algorun.endpoint.publisher import Accepted, Limits, Publisher, WalPolicy
from algorun.endpoint.wal import WriteAheadLog
from tests.support.endpoint import outgoing
from tests.support.fakes import SwitchedProducer
from tests.support.waiting import wait_until


def _logging_publisher(
    producer: SwitchedProducer, wal: WriteAheadLog, *, metrics: EndpointMetrics, **options: Any
) -> Publisher:
    """A publisher that logs every message first (`always`), then forwards it."""
    return Publisher(
        producer,
        wal=wal,
        policy=WalPolicy(mode=WalMode.ALWAYS),
        breaker=CircuitBreaker(),
        limits=Limits(),
        metrics=metrics,
        **options,
    )


def refusing(refusal: BusError) -> SwitchedProducer:
    producer = SwitchedProducer()
    producer.poison_refusal = refusal
    return producer


def _breaker_publisher(producer: SwitchedProducer, requests: int, now: list[float]) -> Publisher:
    """A publisher without a log whose breaker opens at the first failure and half-opens 10 s later."""
    return Publisher(
        producer,
        wal=None,
        policy=WalPolicy(mode=WalMode.DISABLE),
        breaker=CircuitBreaker(fails=1, timeout=10, requests=requests),
        limits=Limits(),
        metrics=EndpointMetrics(),
        clock=lambda: now[0],
    )


def _poison(i: int = 0) -> Outgoing:
    return Outgoing("t", b"p", f"poison{i}".encode(), [], "p")


async def _stored(p: Publisher, msgs: list[Outgoing]) -> list[str]:
    """Where each message went, one after another ("broker", "log", or the refusal's status)."""
    out: list[str] = []
    for m in msgs:
        try:
            accepted: Accepted = await p.publish(m)
        except EndpointError as e:
            out.append(str(e.status))
        else:
            out.append(accepted.stored)
    return out


REFUSALS = [
    pytest.param(MessageTooLarge("too large"), "413", id="too-large"),
    pytest.param(UnknownTopic("no such topic"), "503", id="unknown-topic"),
    pytest.param(NotAuthorized("denied"), "503", id="not-authorised"),
]


@pytest.mark.parametrize(("refusal", "status"), REFUSALS)
async def test_a_probe_refused_for_good_does_not_wedge_a_half_open_breaker(refusal: BusError, status: str) -> None:
    """Without a log: after an outage the breaker lets `cb.requests` probes through; one refused for good used to
    hold its slot forever, and every request after the other probes got 503."""
    producer = refusing(refusal)
    now = [0.0]
    p = _breaker_publisher(producer, 3, now)
    await p.start()
    producer.up = False
    assert await _stored(p, [outgoing(0)]) == ["503"]  # the outage opens the breaker
    producer.up = True
    now[0] = 10.0  # its timeout passed: half-open
    assert await _stored(p, [_poison(), *[outgoing(i) for i in range(1, 7)]]) == [status] + ["broker"] * 6
    assert p.breaker.state is State.CLOSED
    await p.close()


async def test_a_cancelled_probe_gives_its_slot_to_the_next_request() -> None:
    """A client that goes away while its probe waits for the broker must not take the slot with it."""
    producer = SwitchedProducer()
    now = [0.0]
    p = _breaker_publisher(producer, 1, now)
    await p.start()
    producer.up = False
    assert await _stored(p, [outgoing(0)]) == ["503"]
    producer.up, producer.hold = True, True
    now[0] = 10.0
    probe = asyncio.ensure_future(p.publish(outgoing(1)))
    await wait_until(lambda: len(producer.held) == 1, 5, "the probe to reach the producer")
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    producer.hold = False
    assert await _stored(p, [outgoing(2), outgoing(3)]) == ["broker", "broker"]
    await p.close()


async def test_always_mode_refuses_a_message_too_large_for_the_producer_before_logging_it(tmp_path: Path) -> None:
    """413 (the endpoint's too-large error) instead of a 202 for a record that could never be forwarded."""
    producer = SwitchedProducer()
    headers = [("traceID", b"x" * 32), ("run", b"true")]
    fits = Outgoing("t", b"k", b"", headers, "k")
    limit = kafka_record_size(fits.key, b"v" * 100, fits.headers)
    p = _logging_publisher(
        producer, WriteAheadLog(tmp_path / "wal.db"), metrics=EndpointMetrics(), max_message_bytes=limit
    )
    await p.start()
    with pytest.raises(EndpointError) as err:
        await p.publish(fits._replace(value=b"v" * 101))
    assert (err.value.status, err.value.code) == (413, Code.TOO_LARGE)
    assert "message.max.bytes" in err.value.message
    assert (await p.publish(fits._replace(value=b"v" * 100))).stored == "log"
    await wait_until(lambda: len(producer.sent) == 1, 5, "the message that fits to be forwarded")
    await p.close()


@pytest.mark.parametrize(
    ("key", "headers"),
    [
        (None, []),
        (b"key", [("traceID", b"x" * 32), ("run", b"true")]),
        (b"k" * 300, [("n" * 70, b"v" * 9000), ("", b"")]),
    ],
    ids=["bare", "endpoint-headers", "long-varints"],
)
def test_the_size_check_refuses_exactly_what_librdkafka_refuses(key: bytes | None, headers: Headers) -> None:
    """`kafka_record_size` against the installed librdkafka: the largest value it accepts is the largest the
    check lets through (no broker is needed: librdkafka checks the size when the message is produced)."""
    limit = 20_000
    client = KafkaClient({"bootstrap.servers": "127.0.0.1:9", "message.max.bytes": limit, "log_level": 0})

    client_headers: list[tuple[str, str | bytes | None]] = list(headers)

    def librdkafka_takes(n: int) -> bool:
        try:
            client.produce("t", b"v" * n, key, headers=client_headers)
        except KafkaException:
            return False
        return True

    largest = next(n for n in range(limit, 0, -1) if kafka_record_size(key, b"v" * n, headers) <= limit)
    try:
        assert librdkafka_takes(largest)
        assert not librdkafka_takes(largest + 1)
    finally:
        client.purge()


@pytest.mark.parametrize("refusal", [MessageTooLarge("too large"), UnknownTopic("gone"), NotAuthorized("denied")])
async def test_a_logged_record_refused_for_good_is_set_aside_and_the_rest_is_forwarded(
    tmp_path: Path, refusal: BusError
) -> None:
    """It used to stay first in the log for good, tripping the breaker at every try; now it goes to the log's
    dead-letter table (kept across restarts, counted by a metric) and the records behind it go on."""
    producer = refusing(refusal)
    metrics = EndpointMetrics()
    p = Publisher(
        producer,
        wal=WriteAheadLog(tmp_path / "wal.db"),
        policy=WalPolicy(mode=WalMode.ALWAYS),
        breaker=CircuitBreaker(fails=1, timeout=60),
        limits=Limits(),
        metrics=metrics,
    )
    await p.start()
    wal = p.wal
    assert wal is not None
    assert await _stored(p, [outgoing(0), _poison(), outgoing(1), outgoing(2)]) == ["log"] * 4
    await wait_until(lambda: wal.count == 0, 5, "the log to be emptied")
    assert [v for _, v, _, _ in producer.sent] == [b"v0", b"v1", b"v2"]
    assert p.breaker.state is State.CLOSED
    assert metrics.registry.get_sample_value("endpoint_wal_dead_letters") == 1
    await p.close()
    # Kept across a restart, and a later refusal adds to them (its sequence number is not reused).
    q = _logging_publisher(producer, WriteAheadLog(tmp_path / "wal.db"), metrics=EndpointMetrics())
    await q.start()
    assert q.wal is not None and q.wal.dead_count == 1
    assert await _stored(q, [outgoing(3), _poison(1)]) == ["log"] * 2  # numbered 1 and 2 if numbering restarted
    await wait_until(lambda: q.wal is not None and q.wal.count == 0, 5, "the second refused one to be set aside")
    await q.close()
    again = WriteAheadLog(tmp_path / "wal.db")
    await again.open()
    assert (again.count, again.dead_count) == (0, 2)
    await again.close()


async def test_dead_letters_count_toward_the_size_limit(tmp_path: Path) -> None:
    """They are on the same disk: a log full of them refuses with 503 instead of growing past `wal.size`."""
    producer = refusing(MessageTooLarge("too large"))
    poison = _poison()  # 8 bytes (value and key)
    p = _logging_publisher(producer, WriteAheadLog(tmp_path / "wal.db", max_bytes=20), metrics=EndpointMetrics())
    await p.start()
    wal = p.wal
    assert wal is not None
    assert await _stored(p, [poison]) == ["log"]
    await wait_until(lambda: wal.dead_count == 1, 5, "the refused record to be set aside")
    assert await _stored(p, [Outgoing("t", b"", b"x" * 15, [], "k")]) == ["503"]  # 8 + 15 > 20
    await p.close()
