"""A runner with several worker processes (`workers`), as a real process on a real Kafka broker (and the local
log): every message processed, partitions spread over the workers, one endpoint for the pod, and the pod ends
as a whole (drained on SIGTERM, non-zero when a worker dies)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from algorun.bus import Bus, KafkaSettings
from tests.support.runner_configs import names, runner_config
from tests.support.runner_harness import create_topics, send
from tests.support.runner_process import RunnerProcess
from tests.support.waiting import wait_until

WORKERS = {"ALGORUN_RUNNER_WORKERS": "2"}
_WORKER_LINE = re.compile(r"worker (\d+) started \(pid (\d+)\)")


@pytest.fixture
def procs() -> Iterator[list[RunnerProcess]]:
    started: list[RunnerProcess] = []
    yield started
    for p in started:
        p.stop()


def worker_pids(runner: RunnerProcess) -> dict[int, int]:
    """Worker index -> pid, from the supervisor's log."""
    return {int(i): int(pid) for i, pid in _WORKER_LINE.findall(runner.log_path.read_text(errors="replace"))}


def alive(pid: int) -> bool:
    """Whether `pid` is a running (not zombie) process."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def owners(settings: KafkaSettings, group: str) -> dict[str, set[int]]:
    """The group's members (client ids) and the partitions each owns, as the broker describes them."""
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    described = admin.describe_consumer_groups([group])[group].result(timeout=10)
    return {
        m.member_id: {tp.partition for tp in m.assignment.topic_partitions} for m in described.members if m.assignment
    }


def messages_counted(runner: RunnerProcess) -> float:
    """`algorunner_messages_total` with outcome ok, from the pod's one /metrics."""
    status, text = runner.get("/metrics")
    assert status == 200, text
    return sum(
        s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.name == "algorunner_messages_total" and s.labels.get("outcome") == "ok"
    )


async def outputs(bus: Bus, topic: str, expected: int, timeout: float, runner: RunnerProcess) -> Counter[bytes]:  # noqa: ASYNC109
    """Every value of `topic` with its count, once `expected` distinct values arrived (fails with the runner's
    log if it exits or the time runs out)."""
    consumer = bus.consumer(None, [topic])
    counts: Counter[bytes] = Counter()
    deadline = time.monotonic() + timeout
    try:
        while len(counts) < expected:
            assert runner.exited() is None, f"the runner exited with {runner.exited()}:\n{runner.log()}"
            assert time.monotonic() < deadline, f"{len(counts)} of {expected} outputs:\n{runner.log()}"
            counts.update(m.value for m in await consumer.getmany(max_messages=5000, max_wait=0.2))
        counts.update(m.value for m in await consumer.getmany(max_messages=5000, max_wait=0.5))
    finally:
        await consumer.close()
    return counts


@pytest.mark.integration
async def test_two_workers_share_the_partitions_and_the_pod_drains_as_one(
    kafka_bus: Bus, kafka_settings: KafkaSettings, tmp_path: Path, procs: list[RunnerProcess]
) -> None:
    """2 workers on a 4-partition input: every message's output once, both workers own partitions, the one
    /metrics counts every message and /ready answers 200; SIGTERM ends every process with 0 and the group's
    offsets at the end of each partition."""
    total = 4000
    n = names("workers")
    config = runner_config(n)
    await create_topics(kafka_bus, config, partitions=4)
    runner = RunnerProcess(config, f"kafka://{kafka_settings.bootstrap_servers}", tmp_path, env=WORKERS)
    procs.append(runner)
    await asyncio.to_thread(runner.wait_ready, 60)
    pids = worker_pids(runner)
    assert sorted(pids) == [0, 1], runner.log()

    def spread() -> bool:
        found = owners(kafka_settings, n["group"])
        return len(found) == 2 and all(found.values()) and set().union(*found.values()) == {0, 1, 2, 3}

    await wait_until(spread, 30, "both workers owning partitions of the input")
    await send(kafka_bus, n["input"], [f"m{i:05d}".encode() for i in range(total)])
    counts = await outputs(kafka_bus, n["output"], total, 90, runner)
    assert set(counts) == {f"M{i:05d}".encode() for i in range(total)}
    assert max(counts.values()) == 1, "a message was written twice without any failure"
    await wait_until(lambda: messages_counted(runner) == total, 10, f"/metrics counting {total} messages")
    assert runner.get("/ready")[0] == 200

    code = await asyncio.to_thread(runner.terminate, 40)
    assert code == 0, runner.log()
    assert not [p for p in pids.values() if alive(p)], "a worker outlived the pod"
    lags = await kafka_bus.lag(n["group"], [n["input"]])
    assert len(lags) == 4
    assert all(lag.lag == 0 for lag in lags.values()), lags


@pytest.mark.integration
async def test_a_worker_killed_ends_the_pod_with_an_error(
    kafka_bus: Bus, kafka_settings: KafkaSettings, tmp_path: Path, procs: list[RunnerProcess]
) -> None:
    """SIGKILL to one worker: the supervisor stops the other and exits non-zero (137, the killed worker's status),
    so the kubelet restarts the whole pod."""
    n = names("workers-kill")
    config = runner_config(n)
    await create_topics(kafka_bus, config, partitions=4)
    runner = RunnerProcess(config, f"kafka://{kafka_settings.bootstrap_servers}", tmp_path, env=WORKERS)
    procs.append(runner)
    await asyncio.to_thread(runner.wait_ready, 60)
    pids = worker_pids(runner)
    os.kill(pids[0], signal.SIGKILL)
    await wait_until(lambda: runner.exited() is not None, 40, "the supervisor exiting after a worker died")
    assert runner.exited() == 128 + signal.SIGKILL, runner.log()
    assert not alive(pids[1]), "the other worker outlived the pod"


async def test_two_workers_on_the_local_log(local_bus: Bus, tmp_path: Path, procs: list[RunnerProcess]) -> None:
    """The embedded log's consumer groups take several processes: 2 workers, set in the config's runtime block as
    a pipeline YAML sets them, process every message once and drain on SIGTERM."""
    total = 1000
    n = names("workers-local")
    config = runner_config(n)
    config = config.model_copy(update={"runtime": config.runtime.model_copy(update={"workers": 2})})
    await create_topics(local_bus, config, partitions=4)
    runner = RunnerProcess(config, f"local://{tmp_path}/log.db", tmp_path)
    procs.append(runner)
    await asyncio.to_thread(runner.wait_ready, 60)

    def spread() -> bool:  # the log's own record of the group: which member owns which partition
        with contextlib.closing(sqlite3.connect(tmp_path / "log.db")) as db:
            rows = db.execute("SELECT partition, member FROM owners WHERE grp=?", (n["group"],)).fetchall()
        return len({m for _, m in rows}) == 2 and {p for p, _ in rows} == {0, 1, 2, 3}

    await wait_until(spread, 30, "both workers owning partitions of the input")
    await send(local_bus, n["input"], [f"m{i:05d}".encode() for i in range(total)])
    counts = await outputs(local_bus, n["output"], total, 60, runner)
    assert set(counts) == {f"M{i:05d}".encode() for i in range(total)}
    assert max(counts.values()) == 1
    assert sorted(worker_pids(runner)) == [0, 1], runner.log()
    assert await asyncio.to_thread(runner.terminate, 40) == 0, runner.log()


@pytest.mark.integration
async def test_two_exactly_once_workers_do_not_fence_each_other(
    kafka_bus: Bus, kafka_settings: KafkaSettings, tmp_path: Path, procs: list[RunnerProcess]
) -> None:
    """With transactions, each worker has its own transactional id: every message's output is committed once and
    no transaction fails (with one id shared, the second worker's producer fences the first's, whose transaction
    fails and is read again: the pod's log says "transaction failed")."""
    total = 20000
    n = names("workers-eos")
    config = runner_config(n)
    await create_topics(kafka_bus, config, partitions=4)
    env = {**WORKERS, "ALGORUN_RUNNER_EXACTLY_ONCE": "true"}
    # Half before the start, so the first worker to join runs transactions while the other one starts.
    await send(kafka_bus, n["input"], [f"m{i:05d}".encode() for i in range(total // 2)])
    runner = RunnerProcess(config, f"kafka://{kafka_settings.bootstrap_servers}", tmp_path, env=env)
    procs.append(runner)
    await asyncio.to_thread(runner.wait_ready, 60)
    await send(kafka_bus, n["input"], [f"m{i:05d}".encode() for i in range(total // 2, total)])
    counts = await outputs(kafka_bus, n["output"], total, 90, runner)
    assert set(counts) == {f"M{i:05d}".encode() for i in range(total)}
    assert max(counts.values()) == 1
    assert await asyncio.to_thread(runner.terminate, 40) == 0, runner.log()
    log = runner.log_path.read_text(errors="replace")
    assert "transaction failed" not in log, "a worker's transactions were fenced by the other's"
