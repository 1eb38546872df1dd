"""One conformance suite for both backends: what the runner, endpoint and hooks rely on."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from algorun.bus import (
    Bus,
    BusClosed,
    Consumer,
    Message,
    OutMessage,
    TopicPartition,
    TopicSpec,
    TransactionError,
    UnknownTopic,
)
from algorun.bus.partitioning import partition_for_key
from tests.support.consuming import assert_nothing_more, consume_n

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

Names = Callable[[str], str]


async def make_topic(bus: Bus, new_name: Names, partitions: int = 1) -> str:
    name = new_name("topic")
    await bus.create_topics([TopicSpec(name, partitions)])
    return name


async def test_order_within_a_partition(bus: Bus, new_name: Names) -> None:
    topic = await make_topic(bus, new_name, partitions=3)
    async with bus.producer() as p:
        deliveries = await asyncio.gather(*[p.produce(topic, str(i).encode(), key=b"one-trace") for i in range(300)])
    assert {d.partition for d in deliveries} == {partition_for_key(b"one-trace", 3)}
    assert [d.offset for d in deliveries] == sorted(d.offset for d in deliveries)
    async with bus.consumer(new_name("g"), [topic]) as c:
        got = await consume_n(c, 300)
    assert [m.value for m in got] == [str(i).encode() for i in range(300)]
    assert [m.offset for m in got] == [d.offset for d in deliveries]


async def test_keys_map_to_partitions_like_librdkafka(bus: Bus, new_name: Names) -> None:
    topic = await make_topic(bus, new_name, partitions=4)
    keys = [f"trace-{i}".encode() for i in range(40)]
    async with bus.producer() as p:
        deliveries = await asyncio.gather(*[p.produce(topic, b"v", key=k) for k in keys])
    assert [d.partition for d in deliveries] == [partition_for_key(k, 4) for k in keys]


async def test_uncommitted_messages_are_redelivered_after_restart(bus: Bus, new_name: Names) -> None:
    topic = await make_topic(bus, new_name)
    group = new_name("g")
    async with bus.producer() as p:
        for i in range(10):
            await p.send(topic, f"m{i}".encode())
    async with bus.consumer(group, [topic]) as c:
        got = await consume_n(c, 10)
        c.store(got[:4])  # only the first four were processed
        await c.commit()
    async with bus.consumer(group, [topic]) as c:
        again = await consume_n(c, 6)
        assert [m.value for m in again] == [f"m{i}".encode() for i in range(4, 10)]
        # Stored but not explicitly committed: close() commits it.
        c.store(again[:2])
    async with bus.consumer(group, [topic]) as c:
        rest = await consume_n(c, 4)
        assert [m.value for m in rest] == [f"m{i}".encode() for i in range(6, 10)]


async def test_every_group_gets_every_message(bus: Bus, new_name: Names) -> None:
    topic = await make_topic(bus, new_name, partitions=2)
    async with bus.producer() as p:
        await asyncio.gather(*[p.produce(topic, str(i).encode(), key=str(i).encode()) for i in range(50)])
    for _ in range(2):
        async with bus.consumer(new_name("g"), [topic]) as c:
            got = await consume_n(c, 50)
            assert sorted(int(m.value) for m in got) == list(range(50))


async def test_headers_and_keys_round_trip_byte_exact(bus: Bus, new_name: Names) -> None:
    topic = await make_topic(bus, new_name)
    headers = [
        ("traceID", b"0123456789abcdef0123456789abcdef"),
        ("binary", bytes(range(256))),
        ("empty", b""),
        ("repeated", b"first"),
        ("repeated", b"second"),
        ("ünïcode-näme", "välue".encode()),
    ]
    key = b"\x00\xff\x80key\n"
    async with bus.producer() as p:
        await p.send(topic, b"payload", key=key, headers=headers)
        await p.send(topic, b"no headers, no key")
    async with bus.consumer(new_name("g"), [topic]) as c:
        first, second = await consume_n(c, 2)
    assert first.key == key
    assert first.headers == headers
    assert first.header("repeated") == b"second"
    assert first.value == b"payload"
    assert second.key is None
    assert second.headers == []
    assert first.timestamp_ms > 0


async def test_empty_and_large_values(bus: Bus, new_name: Names) -> None:
    topic = await make_topic(bus, new_name)
    large = bytes(range(256)) * 3500  # ~900 KB: under Kafka's default 1 MB message limit
    async with bus.producer() as p:
        await p.send(topic, b"")
        await p.send(topic, large)
    async with bus.consumer(new_name("g"), [topic]) as c:
        empty, big = await consume_n(c, 2)
    assert empty.value == b""
    assert big.value == large


async def test_many_topics_one_consumer(bus: Bus, new_name: Names) -> None:
    topics = [new_name(f"many{i}") for i in range(20)]
    await bus.create_topics([TopicSpec(t, 2) for t in topics])
    listed = await bus.list_topics()
    assert all(listed[t].partitions == 2 for t in topics)
    async with bus.producer() as p:
        await asyncio.gather(*[p.produce(t, t.encode()) for t in topics for _ in range(3)])
    async with bus.consumer(new_name("g"), topics) as c:
        got = await consume_n(c, 60, within=60)
    assert sorted(m.topic for m in got) == sorted(t for t in topics for _ in range(3))
    assert all(m.value == m.topic.encode() for m in got)


async def test_pause_and_resume(bus: Bus, new_name: Names) -> None:
    topic = await make_topic(bus, new_name)
    other = await make_topic(bus, new_name)
    tp = TopicPartition(topic, 0)
    async with bus.producer() as p:
        for i in range(10):
            await p.send(topic, str(i).encode())
    async with bus.consumer(new_name("g"), [topic, other]) as c:
        first = await consume_n(c, 3)
        assert [m.value for m in first] == [b"0", b"1", b"2"]
        c.pause([tp])
        async with bus.producer() as p:
            await p.send(other, b"still flowing")
            await p.send(topic, b"10")
        flowing = await consume_n(c, 1)
        assert flowing[0].topic == other  # the paused partition yields nothing, the others keep going
        await assert_nothing_more(c, wait=1.0)
        c.resume([tp])
        rest = await consume_n(c, 8)
        assert [m.value for m in rest] == [str(i).encode() for i in range(3, 11)]


async def test_lag_counts_the_uncommitted_backlog(bus: Bus, new_name: Names) -> None:
    topic = await make_topic(bus, new_name)
    group = new_name("g")
    async with bus.producer() as p:
        await asyncio.gather(*[p.produce(topic, b"x") for _ in range(10)])
    async with bus.consumer(group, [topic]) as c:
        got = await consume_n(c, 10)
        await c.commit({TopicPartition(topic, 0): got[3].next_offset})
    lag = await bus.lag(group, [topic])
    assert lag[TopicPartition(topic, 0)].lag == 6


async def test_two_members_share_the_partitions_without_duplicates(bus: Bus, new_name: Names) -> None:
    topic = await make_topic(bus, new_name, partitions=4)
    group = new_name("g")
    async with bus.producer() as p:
        await asyncio.gather(*[p.produce(topic, str(i).encode(), key=str(i).encode()) for i in range(200)])
    seen: list[Message] = []
    a = bus.consumer(group, [topic])
    b = bus.consumer(group, [topic])
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        # Both members poll until each owns some partitions, committing as they go.
        while loop.time() < deadline:
            for c in (a, b):
                batch = await c.getmany(max_messages=5, max_wait=0.2)
                seen.extend(batch)
                c.store(batch)
                await c.commit()
            if a.assignment() and b.assignment() and len(seen) >= 200:
                break
        assert a.assignment() and b.assignment(), "both members should own partitions"
        assert not (a.assignment() & b.assignment())
    finally:
        await a.close()
        await b.close()
    keyed = sorted(int(m.value) for m in seen)
    assert keyed == list(range(200))  # each once: what one member committed, the other does not read again


async def test_a_joining_member_takes_over_after_what_the_first_processed(bus: Bus, new_name: Names) -> None:
    """Cooperative rebalancing: a member that processed (stored, not yet committed) half of each partition loses
    only the partitions the newcomer gets, its stored offsets for them are committed on revoke, and the newcomer
    reads exactly the other half of them: nothing processed twice, nothing skipped."""
    topic = await make_topic(bus, new_name, partitions=4)
    group = new_name("g")
    async with bus.producer() as p:
        await asyncio.gather(*[p.produce(topic, f"{i % 4}-{i // 4}".encode(), partition=i % 4) for i in range(40)])
    revoked: list[TopicPartition] = []
    a = bus.consumer(group, [topic], on_revoke=revoked.extend)
    b: Consumer | None = None
    try:
        first = await consume_n(a, 40)
        a.store({TopicPartition(topic, p): 5 for p in range(4)})  # processed: offsets 0-4 of each partition
        assert len(a.assignment()) == 4
        b = bus.consumer(group, [topic])
        taken: list[Message] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while not (a.assignment() and b.assignment() and len(taken) >= 5 * len(b.assignment())):
            assert loop.time() < deadline, f"a: {a.assignment()}, b: {b.assignment()}, b read {len(taken)}"
            assert not await a.getmany(max_messages=100, max_wait=0.1)  # a read everything before b joined
            taken.extend(await b.getmany(max_messages=100, max_wait=0.1))
        assert not (a.assignment() & b.assignment())
        assert a.assignment() | b.assignment() == {TopicPartition(topic, p) for p in range(4)}
        assert set(revoked) == b.assignment()  # only what moved was revoked: a kept the rest all along
        assert sorted((m.partition, m.offset) for m in taken) == sorted(
            (tp.partition, off) for tp in b.assignment() for off in range(5, 10)
        )
        assert len(first) == 40
    finally:
        await a.close()
        if b is not None:
            await b.close()


async def test_produce_to_an_unknown_topic_fails_clearly(bus: Bus, new_name: Names) -> None:
    async with bus.producer() as p:
        with pytest.raises(UnknownTopic, match="algorun-test-missing"):
            await asyncio.wait_for(p.send(new_name("missing"), b"x"), 60)


async def test_aborted_transactions_are_invisible(bus: Bus, new_name: Names) -> None:
    topic = await make_topic(bus, new_name)
    async with bus.producer(transactional_id=new_name("txn")) as p:
        await p.begin_transaction()
        aborted = [p.produce(topic, f"aborted{i}".encode()) for i in range(3)]
        await p.abort_transaction()
        for fut in aborted:
            with pytest.raises(TransactionError):
                await fut
        await p.begin_transaction()
        kept = [p.produce(topic, f"kept{i}".encode()) for i in range(2)]
        await p.commit_transaction()
        assert [(await f).topic for f in kept] == [topic, topic]
    async with bus.consumer(new_name("g"), [topic]) as c:
        got = await consume_n(c, 2)
        assert [m.value for m in got] == [b"kept0", b"kept1"]
        await assert_nothing_more(c, wait=1.0)


async def test_transaction_commits_outputs_and_input_offsets_together(bus: Bus, new_name: Names) -> None:
    source = await make_topic(bus, new_name)
    sink = await make_topic(bus, new_name)
    group = new_name("g")
    async with bus.producer() as p:
        for i in range(4):
            await p.send(source, str(i).encode())
    async with bus.consumer(group, [source]) as c, bus.producer(transactional_id=new_name("txn")) as p:
        inputs = await consume_n(c, 4)
        await p.begin_transaction()
        for m in inputs[:2]:
            p.produce(sink, m.value + b"-out")
        await p.send_offsets_to_transaction(c, {inputs[1].tp: inputs[1].next_offset})
        await p.commit_transaction()
        # The second transaction aborts: its input offsets are not committed, its output never seen.
        await p.begin_transaction()
        p.produce(sink, b"lost")
        await p.send_offsets_to_transaction(c, {inputs[3].tp: inputs[3].next_offset})
        await p.abort_transaction()
    committed = await bus.lag(group, [source])
    assert committed[TopicPartition(source, 0)].committed == 2
    async with bus.consumer(new_name("g"), [sink]) as c:
        outs = await consume_n(c, 2)
        assert [m.value for m in outs] == [b"0-out", b"1-out"]
        await assert_nothing_more(c, wait=1.0)


async def test_produce_many_stores_every_message_in_order(bus: Bus, new_name: Names) -> None:
    topic = await make_topic(bus, new_name, partitions=3)
    batch = [(topic, str(i).encode(), b"one-trace", [("i", str(i).encode())], None) for i in range(200)]
    async with bus.producer() as p:
        assert await p.produce_many(batch) == {}  # nothing failed
        assert await p.produce_many([]) == {}
    async with bus.consumer(new_name("g"), [topic]) as c:
        got = await consume_n(c, 200)
        await assert_nothing_more(c, wait=0.5)
    assert {m.partition for m in got} == {partition_for_key(b"one-trace", 3)}
    assert [m.value for m in got] == [str(i).encode() for i in range(200)]
    assert [m.headers for m in got] == [[("i", str(i).encode())] for i in range(200)]
    assert [m.offset for m in got] == sorted(m.offset for m in got)


async def test_produce_many_reports_each_failure_without_hiding_the_rest(bus: Bus, new_name: Names) -> None:
    topic = await make_topic(bus, new_name)
    missing = new_name("missing")
    async with bus.producer() as p:
        failures = await asyncio.wait_for(
            p.produce_many(
                [
                    OutMessage(topic, b"a"),
                    OutMessage(missing, b"b", key=b"k"),
                    OutMessage(topic, b"c"),
                    OutMessage(missing, b"d"),
                    OutMessage(topic, b"b", key=b"k"),  # the content of a failed one, to another topic
                ]
            ),
            60,
        )
    assert sorted(failures) == [1, 3]
    assert all(isinstance(e, UnknownTopic) for e in failures.values())
    async with bus.consumer(new_name("g"), [topic]) as c:
        got = await consume_n(c, 3)
        await assert_nothing_more(c, wait=0.5)
    assert [m.value for m in got] == [b"a", b"c", b"b"]


async def test_produce_many_in_a_transaction_follows_the_transaction(bus: Bus, new_name: Names) -> None:
    topic = await make_topic(bus, new_name)
    async with bus.producer(transactional_id=new_name("txn")) as p:
        await p.begin_transaction()
        aborted = p.produce_many([(topic, b"aborted", None, None, None)])
        await p.abort_transaction()
        failures = await aborted
        assert list(failures) == [0] and isinstance(failures[0], TransactionError)
        await p.begin_transaction()
        kept = p.produce_many([(topic, b"kept0", None, None, None), (topic, b"kept1", None, None, None)])
        await p.commit_transaction()
        assert await kept == {}
    async with bus.consumer(new_name("g"), [topic]) as c:
        got = await consume_n(c, 2)
        assert [m.value for m in got] == [b"kept0", b"kept1"]
        await assert_nothing_more(c, wait=1.0)


async def test_store_takes_the_highest_offset_of_a_batch(bus: Bus, new_name: Names) -> None:
    topic = await make_topic(bus, new_name, partitions=2)
    group = new_name("g")
    async with bus.producer() as p:
        await p.produce_many([(topic, str(i).encode(), None, None, i % 2) for i in range(20)])
    async with bus.consumer(group, [topic]) as c:
        got = await consume_n(c, 20)
        c.store(reversed(got))  # any order: the highest processed offset per partition wins
        c.store({TopicPartition(topic, 0): 1})  # never lowers what is stored
        await c.commit()
    committed = await bus.lag(group, [topic])
    assert {tp.partition: lag.committed for tp, lag in committed.items()} == {0: 10, 1: 10}


async def _drive_until(consumers: list[Consumer], done: Callable[[], bool], what: str, within: float = 60.0) -> None:
    """Poll every consumer (a rebalance needs each member to poll) until `done()`; fail naming `what`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not done():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        for consumer in consumers:
            assert await consumer.getmany(max_wait=0.2) == [], "no message was produced yet"


async def test_a_paused_partition_that_was_revoked_is_read_again_when_it_comes_back(bus: Bus, new_name: Names) -> None:
    """A revoke forgets a partition's pause (the owner may change); librdkafka, though, kept its pause flag across
    revoke and re-assign, so a runner that paused for backpressure during a rebalance never read that partition
    again while reporting ready."""
    topic = await make_topic(bus, new_name, partitions=2)
    group = new_name("g")
    async with bus.consumer(group, [topic]) as first:
        await _drive_until([first], lambda: len(first.assignment()) == 2, "the first member to own both")
        first.pause(first.assignment())
        async with bus.consumer(group, [topic]) as second:
            await _drive_until([first, second], lambda: bool(second.assignment()), "the second member's share")
        await _drive_until([first], lambda: len(first.assignment()) == 2, "both partitions back with the first")
        # What the runner does: resume what it still believes paused (a revoke forgot the others' pauses).
        first.resume(first.assignment())
        async with bus.producer() as p:
            for i in range(10):
                await p.send(topic, f"m{i}".encode(), partition=i % 2)
        got = await consume_n(first, 10)
    assert sorted(m.value for m in got) == sorted(f"m{i}".encode() for i in range(10))


async def test_in_flight_counts_the_messages_not_yet_acknowledged(bus: Bus, new_name: Names) -> None:
    """Callers bound their backlog by `in_flight`: it counts a message from `produce` until its acknowledgement."""
    topic = await make_topic(bus, new_name)
    async with bus.producer() as p:
        assert p.in_flight == 0
        futures = [p.produce(topic, str(i).encode()) for i in range(50)]
        batch = p.produce_many([(topic, b"batch", None, None, None)] * 10)
        assert p.in_flight == 60
        await asyncio.gather(*futures, batch)
        await p.flush()
        assert p.in_flight == 0


async def test_a_cancelled_acknowledgement_does_not_disturb_the_others(bus: Bus, new_name: Names) -> None:
    """A caller that stops waiting (cancels its future) does not lose the message, and the delivery report
    that arrives for it later neither raises nor settles another message's future."""
    topic = await make_topic(bus, new_name)
    async with bus.producer() as p:
        futures = [p.produce(topic, str(i).encode()) for i in range(20)]
        for fut in futures[::2]:
            fut.cancel()
        deliveries = [await fut for fut in futures[1::2]]
        await p.flush()
        assert p.in_flight == 0
    assert [d.offset for d in deliveries] == sorted(d.offset for d in deliveries)
    async with bus.consumer(new_name("g"), [topic]) as c:
        got = await consume_n(c, 20)
    assert [m.value for m in got] == [str(i).encode() for i in range(20)]


async def test_acknowledgements_settle_on_the_event_loop_while_close_drains(bus: Bus, new_name: Names) -> None:
    """`close` drains while the client keeps serving delivery reports: futures must be settled on the loop's
    thread. (An earlier `close` drained with the client's blocking flush on a worker thread, which served them
    there.) With the loop in debug mode, a future settled from another thread schedules its callbacks from there,
    which the loop refuses with a RuntimeError (and the drain would fail with it)."""
    topic = await make_topic(bus, new_name)
    loop = asyncio.get_running_loop()
    loop.set_debug(True)
    try:
        p = bus.producer()
        futures = [p.produce(topic, str(i).encode()) for i in range(2000)]
        settled_on: set[int] = set()
        for fut in futures:
            fut.add_done_callback(lambda _: settled_on.add(threading.get_ident()))
        await p.close()  # at once: most reports are served while close drains
        await asyncio.gather(*futures)
    finally:
        loop.set_debug(False)
    assert settled_on == {threading.get_ident()}
    with pytest.raises(BusClosed):
        p.produce(topic, b"after close")
