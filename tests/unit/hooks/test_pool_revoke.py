"""A revoked partition's messages leave the webhook's pool: the queued ones are dropped (the new owner delivers
them) and no longer count towards the webhook's backlog, and a worker delivering one of them is cancelled, while
the messages of the partitions kept stay queued."""

from __future__ import annotations

import asyncio

from algorun.bus.types import Message, TopicPartition
from algorun.hooks.service import _Seat
from tests.support.hook_runner import slow_and_fast_runner

A0, A1 = TopicPartition("a", 0), TopicPartition("a", 1)


def _message(tp: TopicPartition, offset: int) -> Message:
    return Message(tp.topic, tp.partition, offset, None, b"{}", (), 0)


async def test_a_revoked_partition_leaves_the_queue_and_its_worker_is_cancelled() -> None:
    runner = slow_and_fast_runner()
    hook = runner.hooks["slow-0"]
    for tp, offset in ((A0, 0), (A1, 0), (A0, 1), (A1, 1)):
        ticket = runner.tracker.owe(tp, offset, 1)
        assert ticket is not None
        hook.queue.append((_message(tp, offset), ticket, 0.0))
        hook.owed += 1
    busy = asyncio.get_running_loop().create_task(asyncio.Event().wait())  # a worker delivering a0@0
    hook.seats[busy] = _Seat(hook, hook.queue.popleft())
    runner._closing = True  # no replacement worker: this test looks at the queue only

    runner._revoked([A0])

    assert [(m.tp, m.offset) for m, _, _ in hook.queue] == [(A1, 0), (A1, 1)]
    assert hook.owed == 3  # the one in flight is owed until its worker ends
    await asyncio.sleep(0)
    assert busy.cancelled()
