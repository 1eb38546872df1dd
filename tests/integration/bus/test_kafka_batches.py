"""The Kafka producer's paths that the conformance suite does not reach: a batch larger than librdkafka's queue
(the overflow, where each message's callback knows its index); a message refused by `produce` itself in the
middle of a batch (its failure is attributed exactly; the messages around it are stored), or inside a transaction
(raised at once, before the commit); delivery reports that librdkafka serves on the worker thread of a blocking
transaction call; `close` when the broker never answers (what is left fails, nothing stays pending), and the
client's threads released by `close` itself."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

import algorun.bus.kafka.producer as kafka_producer
from algorun.bus import Bus, KafkaSettings, MessageTooLarge, ProduceFailed, TopicSpec, TransactionError, open_bus
from tests.support.bus_settings import kafka_settings
from tests.support.consuming import assert_nothing_more, consume_n
from tests.support.procs import free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

Names = Callable[[str], str]


@contextlib.asynccontextmanager
async def kafka_topic(
    request: pytest.FixtureRequest, name: str, partitions: int, producer_config: dict[str, int]
) -> AsyncIterator[tuple[Bus, str]]:
    """A new topic `name` on the test-bed broker, and a bus whose producers use `producer_config` (librdkafka
    names)."""
    bus = open_bus(kafka_settings(request).model_copy(update={"producer_config": producer_config}))
    try:
        await bus.create_topics([TopicSpec(name, partitions=partitions, replication_factor=1)])
        yield bus, name
    finally:
        await bus.close()


async def test_a_batch_larger_than_the_client_queue_is_stored_whole_and_in_order(
    request: pytest.FixtureRequest, new_name: Names
) -> None:
    async with kafka_topic(request, new_name("overflow"), 2, {"queue.buffering.max.messages": 50}) as (bus, topic):
        values = [f"{i:04d}".encode() for i in range(1000)]
        async with bus.producer() as p:
            first = p.produce_many([(topic, v, b"k", None, None) for v in values[:600]])
            second = p.produce_many([(topic, v, b"k", None, None) for v in values[600:]])  # behind the overflow
            assert list(await asyncio.wait_for(asyncio.gather(first, second), 60)) == [{}, {}]
            assert p.in_flight == 0
        async with bus.consumer(new_name("g"), [topic]) as c:
            got = await consume_n(c, 1000)
            await assert_nothing_more(c, wait=0.5)
    assert [m.value for m in got] == values  # one key: one partition, in produce order


async def test_a_message_refused_by_produce_fails_alone_in_its_batch(
    request: pytest.FixtureRequest, new_name: Names
) -> None:
    async with kafka_topic(request, new_name("too-large"), 1, {"message.max.bytes": 10_000}) as (bus, topic):
        batch = [(topic, value, None, None, None) for value in (b"a", b"x" * 20_000, b"c")]
        async with bus.producer() as p:
            failures = await asyncio.wait_for(p.produce_many(batch), 60)
        async with bus.consumer(new_name("g"), [topic]) as c:
            got = await consume_n(c, 2)
            await assert_nothing_more(c, wait=0.5)
    assert list(failures) == [1]
    assert isinstance(failures[1], MessageTooLarge)
    assert [m.value for m in got] == [b"a", b"c"]


async def test_a_write_refused_inside_a_transaction_raises_before_the_commit(
    request: pytest.FixtureRequest, new_name: Names
) -> None:
    """librdkafka refuses a too-large message before it joins the transaction, so the transaction would commit
    without it and its future would fail only afterwards: the caller hears of it at `produce` instead, while it
    can still write something else in its place."""
    async with kafka_topic(request, new_name("txn-too-large"), 1, {"message.max.bytes": 10_000}) as (bus, topic):
        async with bus.producer(transactional_id=new_name("txn")) as p:
            await p.begin_transaction()
            first = p.produce(topic, b"a")
            with pytest.raises(MessageTooLarge):
                p.produce(topic, b"x" * 20_000)
            last = p.produce(topic, b"instead")
            await p.commit_transaction()
            assert [(await f).offset for f in (first, last)] == [0, 1]
        async with bus.consumer(new_name("g"), [topic]) as c:
            got = await consume_n(c, 2)
            await assert_nothing_more(c, wait=0.5)
    assert [m.value for m in got] == [b"a", b"instead"]


async def test_a_batch_with_a_refused_write_inside_a_transaction_cannot_commit(
    request: pytest.FixtureRequest, new_name: Names
) -> None:
    """`produce_many` reports the refused message by its index; the rest of the batch is in the transaction and
    that message is not, so committing must fail rather than keep a part of the batch."""
    async with kafka_topic(request, new_name("txn-batch"), 1, {"message.max.bytes": 10_000}) as (bus, topic):
        async with bus.producer(transactional_id=new_name("txn")) as p:
            await p.begin_transaction()
            outcome = p.produce_many([(topic, v, None, None, None) for v in (b"a", b"x" * 20_000, b"c")])
            with pytest.raises(TransactionError, match="refused"):
                await p.commit_transaction()
            failures = await outcome
            assert isinstance(failures[1], MessageTooLarge) and set(failures) == {0, 1, 2}
            await p.begin_transaction()  # the producer goes on
            kept = p.produce(topic, b"next")
            await p.commit_transaction()
            await kept
        async with bus.consumer(new_name("g"), [topic]) as c:
            got = await consume_n(c, 1)
            await assert_nothing_more(c, wait=0.5)
    assert [m.value for m in got] == [b"next"]


async def test_delivery_reports_served_during_a_commit_are_settled_on_the_event_loop(
    request: pytest.FixtureRequest, new_name: Names
) -> None:
    """`commit_transaction` blocks on a worker thread, and librdkafka serves the transaction's delivery reports
    there: the producer hands them to the loop's thread. With the loop in debug mode, a delivery settled on the
    worker would schedule its callbacks from there, which the loop refuses with a RuntimeError (and the commit
    would fail with it)."""
    async with kafka_topic(request, new_name("txn-threads"), 1, {}) as (bus, topic):
        loop = asyncio.get_running_loop()
        loop.set_debug(True)
        settled_on: set[int] = set()
        try:
            async with bus.producer(transactional_id=new_name("txn")) as p:
                await p.begin_transaction()
                returned = [p.produce(topic, str(i).encode()) for i in range(2000)]
                # The deliveries themselves: what `produce` returned settles with the commit, on the loop anyway.
                for delivery, _ in p._txn or []:  # type: ignore[attr-defined]
                    delivery.add_done_callback(lambda _: settled_on.add(threading.get_ident()))
                await p.commit_transaction()  # at once: most reports are served while it flushes
                offsets = [d.offset for d in await asyncio.gather(*returned)]
        finally:
            loop.set_debug(False)
    assert settled_on == {threading.get_ident()}
    assert offsets == sorted(offsets) and len(set(offsets)) == 2000


async def test_close_fails_every_message_an_unreachable_broker_never_acknowledged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`close` gives up draining after its timeout; then every message still waiting fails with `ProduceFailed`,
    both those inside librdkafka (purged) and those queued behind it in the overflow. Before, the ones inside
    librdkafka kept futures that never settled: a caller awaiting one waited forever on a closed producer."""
    monkeypatch.setattr(kafka_producer, "DRAIN_TIMEOUT_S", 0.5)
    settings = KafkaSettings(
        bootstrap_servers=f"127.0.0.1:{free_port()}", producer_config={"queue.buffering.max.messages": 10}
    )
    bus = open_bus(settings)
    try:
        p = bus.producer()
        singles = [p.produce("nowhere", str(i).encode()) for i in range(25)]  # 10 in librdkafka, 15 overflow
        batch = p.produce_many([("nowhere", b"b%d" % i, None, None, None) for i in range(5)])
        await asyncio.wait_for(p.close(), 30)
        outcomes = await asyncio.wait_for(asyncio.gather(*singles, return_exceptions=True), 5)
        failures = await asyncio.wait_for(batch, 5)
    finally:
        await bus.close()
    assert all(isinstance(o, ProduceFailed) and "closed before the broker acknowledged" in str(o) for o in outcomes)
    assert sorted(failures) == list(range(5))
    assert all(isinstance(e, ProduceFailed) for e in failures.values())


def _librdkafka_threads() -> int:
    """Threads of this process that librdkafka started (it names them `rdk:...`)."""
    count = 0
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            count += (task / "comm").read_text().startswith("rdk:")
    return count


async def test_close_releases_the_clients_threads_and_connections(
    request: pytest.FixtureRequest, new_name: Names
) -> None:
    """A closed producer's librdkafka client (its threads, its broker connections) is released by `close`, not
    left to the cyclic collector, which `tune_gc` makes rare: a component that replaces its producer must not
    pile up clients. The collector is off here, as a long interval between its passes would leave it."""
    gc.disable()
    try:
        async with kafka_topic(request, new_name("close"), 1, {}) as (bus, topic):
            before = _librdkafka_threads()
            p = bus.producer()
            await p.send(topic, b"x")
            assert _librdkafka_threads() > before
            await p.close()
            await wait_until(lambda: _librdkafka_threads() <= before, 10, "the closed producer's threads to end")
    finally:
        gc.enable()
