"""The runner hands the writes of a whole dispatched batch to one `produce_many`: a write refused inside such a
batch must be written again (only it), its run must stay uncommitted until then, and the other runs of the batch
must finish normally."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from algorun.bus import Bus, Failures
from algorun.bus.errors import BusError
from algorun.bus.interface import Producer
from algorun.bus.types import OutRecord
from tests.support.runner_configs import names, runner_config
from tests.support.runner_harness import collect, create_topics, nothing_more, running, send
from tests.support.waiting import wait_until as until


def refuse_once(bus: Bus, refused: set[bytes], on_call: Callable[[list[bytes]], Awaitable[None]]) -> list[list[bytes]]:
    """Make the runner's producer refuse the first write of each value in `refused` (it is not stored), as a
    broker refusing one message of a batch would; returns the values of every `produce_many` call, each also
    passed to `on_call` before it is written."""
    calls: list[list[bytes]] = []
    real = bus.producer

    def producer(**kwargs: Any) -> Producer:
        p = real(**kwargs)
        produce_many = p.produce_many

        async def outcomes(records: Sequence[OutRecord]) -> Failures:
            await on_call([r[1] for r in records])
            fail = [i for i, r in enumerate(records) if r[1] in refused]
            refused.difference_update(r[1] for r in records)
            kept = [i for i in range(len(records)) if i not in fail]
            failures = await produce_many([records[i] for i in kept])
            return {kept[j]: e for j, e in failures.items()} | dict.fromkeys(fail, BusError("refused by the test"))

        def many(records: Sequence[OutRecord]) -> Awaitable[Failures]:
            calls.append([r[1] for r in records])
            return asyncio.ensure_future(outcomes(records))

        p.produce_many = many  # type: ignore[method-assign,assignment]
        return p

    bus.producer = producer  # type: ignore[method-assign]
    return calls


async def test_a_refused_write_in_a_batch_is_written_again_and_the_rest_finish(local_bus: Bus) -> None:
    n = names("batch")
    config = runner_config(n, entrypoint="tests.algos.pyalgos:upper")
    await create_topics(local_bus, config)
    total = 300
    await send(local_bus, n["input"], [f"m{i:03d}".encode() for i in range(total)])
    committed_at_rewrite: list[int] = []

    async def on_call(values: list[bytes]) -> None:
        if values == [b"M007"]:  # the re-write: nothing at or after m007 may be committed yet
            lag = await local_bus.lag(n["group"], [n["input"]])
            committed_at_rewrite.append(sum(x.committed or 0 for x in lag.values()))

    calls = refuse_once(local_bus, {b"M007"}, on_call)
    async with running(config, local_bus) as runner:
        out = await collect(local_bus, n["output"], total)
        await until(lambda: runner.tracker.in_flight == 0, 10, "every run finished")
    counts = Counter(m.value for m in out)
    assert set(counts) == {f"M{i:03d}".encode() for i in range(total)}
    assert all(c == 1 for c in counts.values())  # a refused write was not stored, so it is written once more
    assert any(len(c) > 1 for c in calls)  # inline runs of one fetch went out together
    assert [c for c in calls if b"M007" in c][-1] == [b"M007"]  # only the refused write went again
    assert committed_at_rewrite and committed_at_rewrite[0] <= 7
    lag = await local_bus.lag(n["group"], [n["input"]])
    assert sum(x.lag for x in lag.values()) == 0  # everything committed once the re-write was acknowledged
    await nothing_more(local_bus, n["output"], total, wait=0.3)


async def test_refused_writes_of_usual_and_other_runs_in_one_batch(local_bus: Bus) -> None:
    """A batch whose runs are of both kinds: the usual ones (nothing inherited) go first as bare records, the
    rest (here: inputs with a custom header, which their outputs inherit) after them. A refused write in either
    part is written again, once, and the right run waits for it."""
    n = names("batchmix")
    config = runner_config(n, entrypoint="tests.algos.pyalgos:upper")
    await create_topics(local_bus, config)
    await send(local_bus, n["input"], [f"a{i:02d}".encode() for i in range(40)], partition=0)
    tag = [("x-tenant", b"blue")]
    await send(local_bus, n["input"], [f"b{i:02d}".encode() for i in range(40)], extra=tag, partition=0)
    await send(local_bus, n["input"], [f"c{i:02d}".encode() for i in range(40)], partition=0)
    refused = {b"A05", b"B07", b"C09"}

    async def on_call(values: list[bytes]) -> None:
        return None

    calls = refuse_once(local_bus, set(refused), on_call)
    async with running(config, local_bus) as runner:
        out = await collect(local_bus, n["output"], 120)
        await until(lambda: runner.tracker.in_flight == 0, 10, "every run finished")
    counts = Counter(m.value for m in out)
    assert set(counts) == {f"{g}{i:02d}".upper().encode() for g in "abc" for i in range(40)}
    assert all(c == 1 for c in counts.values())
    assert any(b"A00" in c and b"B00" in c for c in calls)  # both kinds of run went out in one batch
    for value in refused:
        assert [c for c in calls if value in c][-1] == [value]  # only the refused write went again
    tenants = {m.value[:1]: m.header("x-tenant") for m in out}
    assert tenants == {b"A": None, b"B": b"blue", b"C": None}  # the tagged inputs' outputs inherited the header
    lag = await local_bus.lag(n["group"], [n["input"]])
    assert sum(x.lag for x in lag.values()) == 0
    await nothing_more(local_bus, n["output"], 120, wait=0.3)
