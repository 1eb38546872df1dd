"""The outbox's rules against a fake producer (tests/support/fakes.py): a run is finished, and its offsets
committable, only once every write it caused is acknowledged; a refused write is written again alone and in
order; a write refused inside a transaction fails it; a write too large for Kafka is replaced (a claim-checked
reference with storage, else the dead letters of the run's inputs), never written again as it was."""

from __future__ import annotations

import asyncio
import json

import pytest

from algorun.bus import contract
from algorun.bus.errors import BusError, MessageTooLarge, ProduceFailed
from algorun.bus.types import Message, OutRecord, TopicPartition
from algorun.runner import outbox as outbox_module
from algorun.runner.metrics import RunnerMetrics
from algorun.runner.outbox import Outbox, PendingBatch, TransactionalOutbox
from algorun.runner.oversize import Oversize
from algorun.runner.payloads import ClaimCheck, MemoryClaimCheck, NoStorage
from algorun.runner.progress import Progress
from algorun.runner.writes import Write, WriteKind
from tests.support.fakes import FakeProducer, Refusal, acknowledge_all
from tests.support.runner_configs import names, runner_config
from tests.support.waiting import wait_until

INPUT = TopicPartition("in", 0)
OUT = "out"
DLQ = "dead-letters"


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refused writes are written again at once (the waits themselves are not what these tests check)."""
    monkeypatch.setattr(outbox_module, "REWRITE_BACKOFF_S", (0.0,))


def make(
    refuse: Refusal = acknowledge_all,
    *,
    transactional: bool = False,
    claim_check: ClaimCheck | None = None,
    refuse_at_once: Refusal = acknowledge_all,
) -> tuple[Outbox, FakeProducer, Progress]:
    config = runner_config(names("outbox"))
    metrics = RunnerMetrics(config)
    progress = Progress()
    producer = FakeProducer(refuse=refuse, refuse_at_once=refuse_at_once)
    oversize = Oversize(
        claim_check or NoStorage(), metrics, dead_letter_topic=DLQ, component="algo", retry_topics=frozenset()
    )
    cls = TransactionalOutbox if transactional else Outbox
    return cls(producer, progress, metrics, oversize, config.outputs[0]), producer, progress


def fetched(progress: Progress, n: int) -> list[Message]:
    messages = [
        Message(INPUT.topic, INPUT.partition, i, None, b"in-%d" % i, contract.first_hop(trace_id=f"t{i}"), 0)
        for i in range(n)
    ]
    progress.fetched(messages)
    return messages


def out(value: bytes, kind: WriteKind = WriteKind.OUTPUT) -> Write:
    return Write(OUT, value, b"key", [], "out", len(value), kind)


def refused_once(*values: bytes, error: BusError | None = None) -> Refusal:
    """Refuses each of `values` the first time it is written."""
    left = set(values)

    def refuse(record: OutRecord) -> BusError | None:
        if record[1] in left:
            left.discard(record[1])
            return error or ProduceFailed("not acknowledged")
        return None

    return refuse


def values(records: list[OutRecord]) -> list[bytes]:
    return [r[1] for r in records]


async def finished(progress: Progress) -> None:
    await asyncio.wait_for(progress.idle.wait(), 5)


async def test_a_refused_write_is_written_again_alone_and_in_order() -> None:
    outbox, producer, progress = make(refused_once(b"a2", b"a3"))
    m = fetched(progress, 1)
    outbox.write(m, 0.0, [out(b"a1"), out(b"a2"), out(b"a3"), out(b"a4")])
    await finished(progress)
    assert [values(b) for b in producer.batches] == [[b"a1", b"a2", b"a3", b"a4"], [b"a2", b"a3"]]
    assert values(producer.acknowledged) == [b"a1", b"a4", b"a2", b"a3"]
    assert progress.tracker.take_moved() == {INPUT: 1}


async def test_a_run_is_not_finished_while_a_write_of_it_is_refused() -> None:
    broker_up = asyncio.Event()

    def refuse(record: OutRecord) -> BusError | None:
        return None if broker_up.is_set() or record[1] != b"b" else ProduceFailed("broker down")

    outbox, producer, progress = make(refuse)
    m = fetched(progress, 1)
    outbox.write(m, 0.0, [out(b"a"), out(b"b")])
    await wait_until(lambda: len(producer.batches) >= 3, 5, "the refused write written again twice")
    assert progress.unfinished == 1
    assert progress.tracker.take_moved() == {}
    assert all(values(b) == [b"b"] for b in producer.batches[1:])
    broker_up.set()
    await finished(progress)
    assert progress.tracker.take_moved() == {INPUT: 1}


async def test_partial_acknowledgements_finish_the_acknowledged_runs_only() -> None:
    """One batch of five runs (two plain ones first, as the inline path adds them): a refused write holds back
    its own run, and the contiguous committable prefix stops before it; the others are finished at once."""
    broker_up = asyncio.Event()

    def refuse(record: OutRecord) -> BusError | None:
        return None if broker_up.is_set() or record[1] not in (b"p1", b"r3") else ProduceFailed("broker down")

    outbox, producer, progress = make(refuse)
    m = fetched(progress, 5)
    batch = outbox.open_batch()
    assert batch is not None
    for i in (0, 1):
        batch.records.append((OUT, b"p%d" % i, b"key", [], None))
        batch.plain.append(m[i])
        batch.plain_started.append(0.0)
        batch.plain_bytes += 2
    for i in (2, 3, 4):
        outbox.write([m[i]], 0.0, [out(b"r%d" % i)])
    outbox.close_batch()
    assert [values(b) for b in producer.batches] == [[b"p0", b"p1", b"r2", b"r3", b"r4"]]
    await wait_until(lambda: len(producer.batches) >= 5, 5, "both refused writes written again twice")
    assert {tuple(values(b)) for b in producer.batches[1:]} == {(b"p1",), (b"r3",)}  # each alone
    assert progress.unfinished == 2
    assert progress.tracker.take_moved() == {INPUT: 1}
    broker_up.set()
    await finished(progress)
    assert progress.tracker.take_moved() == {INPUT: 5}


async def test_a_batch_behind_an_unacknowledged_one_waits_for_it() -> None:
    """Batches settle in produce order: the committable prefix never passes an unacknowledged write."""
    outbox, producer, progress = make(refused_once(b"first"))
    m = fetched(progress, 2)
    outbox.write([m[0]], 0.0, [out(b"first")])
    outbox.write([m[1]], 0.0, [out(b"second")])
    await finished(progress)
    assert values(producer.acknowledged) == [b"second", b"first"]
    assert progress.tracker.take_moved() == {INPUT: 2}


async def test_a_write_refused_in_a_transaction_fails_it() -> None:
    outbox, producer, progress = make(
        transactional=True, refuse_at_once=lambda r: ProduceFailed("fenced") if r[1] == b"b" else None
    )
    assert isinstance(outbox, TransactionalOutbox)
    assert outbox.open_batch() is None
    await outbox.begin()
    m = fetched(progress, 2)
    outbox.write([m[0]], 0.0, [out(b"a")])
    outbox.write([m[1]], 0.0, [out(b"b")])
    await finished(progress)
    with pytest.raises(ProduceFailed, match="fenced"):
        await outbox.commit(None, progress.tracker)  # type: ignore[arg-type]
    await outbox.abort()
    assert producer.events == ["begin", "abort"]
    assert producer.committed == []


async def test_a_transaction_without_refusals_commits_writes_with_offsets() -> None:
    outbox, producer, progress = make(transactional=True)
    assert isinstance(outbox, TransactionalOutbox)
    await outbox.begin()
    m = fetched(progress, 2)
    outbox.write([m[0]], 0.0, [out(b"a")])
    outbox.write([m[1]], 0.0, [out(b"b")])
    await finished(progress)
    await outbox.commit(None, progress.tracker)  # type: ignore[arg-type]
    assert producer.events == ["begin", "offsets", "commit"]
    assert producer.offsets == [{INPUT: 2}]
    assert values(producer.committed) == [b"a", b"b"]


async def test_too_large_with_storage_is_written_as_a_reference() -> None:
    storage = MemoryClaimCheck(offload_above=1_000_000)
    outbox, producer, progress = make(
        refused_once(b"huge", error=MessageTooLarge("over the limit")), claim_check=storage
    )
    m = fetched(progress, 1)
    outbox.write(m, 0.0, [out(b"small"), out(b"huge")])
    await finished(progress)
    again = producer.batches[1]
    assert len(again) == 1
    topic, value, _, headers, _ = again[0]
    assert topic == OUT
    assert contract.get(headers or [], contract.MESSAGE_DATA_TYPE) == "FileReference"
    assert list(storage.objects.values()) == [b"huge"]
    assert json.loads(value)["file"] in storage.objects
    assert progress.tracker.take_moved() == {INPUT: 1}


async def test_too_large_without_storage_dead_letters_the_inputs_once() -> None:
    too_large = MessageTooLarge("over the limit")
    outbox, producer, progress = make(refused_once(b"huge1", b"huge2", error=too_large))
    staged_and_trigger = fetched(progress, 2)
    progress.count(-1)  # the staged part stopped counting when it was staged; its run finishes its offset
    outbox.write(staged_and_trigger, 0.0, [out(b"huge1"), out(b"fits"), out(b"huge2")])
    await finished(progress)
    again = producer.batches[1]
    assert [r[0] for r in again] == [DLQ, DLQ]  # one dead letter per input, not per refused write
    assert values(again) == [b"in-0", b"in-1"]
    assert [contract.get(r[3] or [], contract.ERROR_TYPE) for r in again] == ["MessageTooLarge"] * 2
    assert [contract.get(r[3] or [], contract.RUN) for r in again] == ["false", "true"]
    assert b"huge1" not in values(producer.acknowledged)
    assert progress.tracker.take_moved() == {INPUT: 2}


async def test_a_dead_letter_too_large_goes_without_its_value() -> None:
    outbox, producer, progress = make(refused_once(b"letter", error=MessageTooLarge("over the limit")))
    m = fetched(progress, 1)
    outbox.write(m, 0.0, [Write(DLQ, b"letter", b"key", [], "", 6, WriteKind.DEAD_LETTER)])
    await finished(progress)
    (record,) = producer.batches[1]
    assert record[1] == b""
    assert contract.get(record[3] or [], contract.ERROR_VALUE_OMITTED) == "6"


def test_a_pending_batch_keeps_run_order() -> None:
    batch = PendingBatch()
    batch.add([], 0.0, [out(b"a"), out(b"b")])
    batch.add([], 0.0, [out(b"c")])
    assert values(batch.records) == [b"a", b"b", b"c"]
    assert [n for _, _, n in batch.runs] == [2, 1]
