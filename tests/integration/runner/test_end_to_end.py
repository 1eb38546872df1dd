"""Every executor and delivery type through a bus, with a small real algo; RetryTopics; readiness; exactly-once."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

from algorun.bus import Bus, TopicPartition, contract
from algorun.runner.executors import create
from algorun.runner.executors.base import Executor
from algorun.runner.model import Output, Request
from algorun.runner.replay import replay
from algorun.runner.service import Runner
from tests.algos.grpc_algo import start_grpc_algo
from tests.algos.http_algo import start_http_algo
from tests.support.paths import REPO
from tests.support.procs import free_port
from tests.support.runner_configs import names, runner_config
from tests.support.runner_harness import collect, create_topics, header, options, running, send
from tests.support.waiting import wait_until as until

PY = sys.executable


async def roundtrip(bus: Bus, config: Any, values: list[bytes], expect: list[bytes], **opts: Any) -> list[Any]:
    await create_topics(bus, config)
    async with running(config, bus, options(**opts)):
        await send(bus, config.inputs[0].topics[0].topic, values)
        out = await collect(bus, config.outputs[0].topic, len(expect))
    assert sorted(m.value for m in out) == sorted(expect)
    return out


async def test_http_executor(bus: Bus) -> None:
    port = free_port()
    algo = await start_http_algo(port)
    try:
        config = runner_config(
            names(),
            executor="http",
            entrypoint=None,
            input_type="Http",
            input_extra={"http": {"verb": "POST", "port": port, "path": "/upper"}},
            outputs=[{"name": "out", "outputDeliveryType": "HttpResponse", "topic": names()["output"]}],
        )
        out = await roundtrip(bus, config, [b"a", b"b"], [b"A", b"B"])
        assert header(out[0], contract.CONTENT_TYPE) == "text/x-upper"
    finally:
        await algo.cleanup()


async def test_grpc_executor_stream_mode(local_bus: Bus) -> None:
    port = free_port()
    server = await start_grpc_algo(port)
    try:
        config = runner_config(
            names(), executor="grpc", entrypoint=None, input_type="Grpc", input_extra={"grpc": {"port": port}}
        )
        await roundtrip(local_bus, config, [b"a", b"b"], [b"A", b"B"], grpc_mode="stream")
    finally:
        await server.stop(None)


@pytest.mark.parametrize("mode", ["per-message", "streaming"])
async def test_executable_stdin_stdout(local_bus: Bus, mode: str) -> None:
    entry = "tests/algos/exec_upper.sh" if mode == "per-message" else f"{PY} tests/algos/exec_stream.py"
    config = runner_config(names(), executor="Executable", entrypoint=entry)
    await roundtrip(local_bus, config, [b"x", b"y", b"z"], [b"X", b"Y", b"Z"], exec_mode=mode)


async def test_executable_file_inputs_and_outputs(local_bus: Bus) -> None:
    n = names()
    config = runner_config(
        n,
        executor="Executable",
        entrypoint=f"{PY} tests/algos/exec_files.py",
        input_type="FileParameter",
        input_extra={"fileParameter": {"parameter": "--in"}},
        outputs=[
            {"name": "file", "outputDeliveryType": "FileParameter", "parameter": "--out", "topic": n["output"]},
            {"name": "folder", "outputDeliveryType": "FolderParameter", "parameter": "--dir", "topic": n["retry"]},
        ],
    )
    await create_topics(local_bus, config)
    await local_bus.create_topics([__import__("algorun.bus", fromlist=["TopicSpec"]).TopicSpec(n["retry"])])
    trace = "ef" * 16
    async with running(config, local_bus):
        await send(local_bus, n["input"], [b"one", b"two"], trace=lambda i: trace, run=False)
        await send(local_bus, n["input"], [b"three"], trace=lambda i: trace)
        files = await collect(local_bus, n["output"], 1)
        folder = await collect(local_bus, n["retry"], 3)
    assert [m.value for m in files] == [b"ONETWOTHREE"]
    assert header(files[0], contract.FILE_NAME) == trace
    assert {(header(m, contract.FILE_NAME), m.value) for m in folder} == {
        ("part-0.txt", b"ONE"),
        ("part-1.txt", b"TWO"),
        ("part-2.txt", b"THREE"),
    }


async def test_environment_variable_input(local_bus: Bus) -> None:
    config = runner_config(
        names(),
        executor="Executable",
        entrypoint=f"{PY} -c 'import os,sys; sys.stdout.write(os.environ[\"DATA\"][::-1])'",
        input_type="EnvironmentVariable",
        input_extra={"environmentVariable": "DATA"},
    )
    await roundtrip(local_bus, config, [b"abc"], [b"cba"])


async def test_retry_topics_then_dead_letter_then_replay(bus: Bus, tmp_path: Any, monkeypatch: Any) -> None:
    fixed = tmp_path / "fixed"
    monkeypatch.setenv("ALGORUN_TEST_FIXED", str(fixed))
    n = names()
    retry_topics = {"1s": n["retry"] + "-1s", "2s": n["retry"] + "-2s"}
    config = runner_config(
        n,
        entrypoint="tests.algos.pyalgos:poison",
        retry={
            "strategy": "RetryTopics",
            "steps": [
                {"index": 0, "backoffDuration": "1s", "repeat": 1},
                {"index": 1, "backoffDuration": "2s", "repeat": 1},
            ],
        },
        retry_topics=retry_topics,
    )
    await create_topics(bus, config)
    async with running(config, bus) as r:
        await send(bus, n["input"], [b"a", b"poison", b"b"])
        out = await collect(bus, n["output"], 2, timeout=10)  # later messages keep flowing meanwhile
        assert sorted(m.value for m in out) == [b"A", b"B"]
        first = await collect(bus, retry_topics["1s"], 1)
        assert header(first[0], contract.RETRY_STEP_INDEX) == "0"
        assert header(first[0], contract.ERROR_TOPIC) == n["input"]
        dead = await collect(bus, n["dlq"], 1, timeout=20)
        assert header(dead[0], contract.RETRY_STEP_INDEX) == "1"
        assert header(dead[0], contract.ERROR_TYPE) == "ValueError"
        assert header(dead[0], contract.ERROR_TOPIC) == n["input"]
        [second] = await collect(bus, retry_topics["2s"], 1)
        assert second.value == b"poison"
        # Each copy was held until due: the next attempt's write comes a backoff after the copy was written.
        assert second.timestamp_ms - first[0].timestamp_ms >= 950
        assert dead[0].timestamp_ms - second.timestamp_ms >= 1950
        fixed.touch()
        result = await replay(config, bus, idle_seconds=1.0)
        assert result.targets == {retry_topics["1s"]: 1}
        out = await collect(bus, n["output"], 3, timeout=15)
        assert sorted(m.value for m in out) == [b"A", b"B", b"POISON"]
        dlq = r.metrics.registry.get_sample_value("algorunner_dlq_by_step_total", {**r.metrics.labels, "step": "1"})
        assert dlq == 1.0


async def test_not_ready_until_the_algo_runs_then_the_backlog_is_processed(local_bus: Bus) -> None:
    port = free_port()
    n = names()
    config = runner_config(
        n,
        executor="http",
        entrypoint=None,
        input_type="Http",
        input_extra={"http": {"verb": "POST", "port": port, "path": "/upper"}},
        outputs=[{"name": "out", "outputDeliveryType": "HttpResponse", "topic": n["output"]}],
    )
    await create_topics(local_bus, config)
    await send(local_bus, n["input"], [f"m{i}".encode() for i in range(20)])
    async with running(config, local_bus) as r:
        await until(lambda: "algo" in r.readiness.reasons(), 5, "the runner to report the algo missing")
        assert "consumer" in r.readiness.reasons()
        lag = await local_bus.lag(n["group"], [n["input"]])
        assert sum(x.lag for x in lag.values()) == 20  # nothing consumed
        algo = await start_http_algo(port)
        try:
            out = await collect(local_bus, n["output"], 20)
            await until(lambda: not r.readiness.reasons(), 5, "the runner to become ready")
        finally:
            await algo.cleanup()
    assert len({m.value for m in out}) == 20


async def test_a_runner_without_partitions_is_not_ready(bus: Bus) -> None:
    """Two runners of one group on a one-partition topic: the member that owns it is ready, the other says why
    it is not (no partitions assigned); when the owner stops, the other takes over and becomes ready."""
    n = names()
    config = runner_config(n)
    await create_topics(bus, config)
    runners = [Runner(config, options(), bus, create(config, options())) for _ in range(2)]
    stops = [asyncio.Event() for _ in runners]
    tasks = [asyncio.create_task(r.run(stop)) for r, stop in zip(runners, stops, strict=True)]
    try:
        await until(lambda: any(not r.readiness.reasons() for r in runners), 30, "one runner to own the partition")
        owner = next(i for i, r in enumerate(runners) if not r.readiness.reasons())
        standby = runners[1 - owner]
        await send(bus, n["input"], [b"x"])
        await collect(bus, n["output"], 1)
        assert not runners[owner].readiness.reasons()
        assert standby.readiness.reasons() == {"consumer": "no partitions assigned"}
        stops[owner].set()
        await asyncio.wait_for(tasks[owner], 30)
        await until(lambda: not standby.readiness.reasons(), 60, "the other runner to take over")
    finally:
        for stop in stops:
            stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)


async def test_exactly_once_passthrough(bus: Bus) -> None:
    n = names()
    config = runner_config(n, entrypoint="tests.algos.pyalgos:upper")
    out = await roundtrip(
        bus, config, [f"m{i}".encode() for i in range(30)], [f"M{i}".encode() for i in range(30)], exactly_once=True
    )
    assert len(out) == 30


async def test_config_from_the_example_pipeline(local_bus: Bus) -> None:
    """The config `algorun.api` builds for the demo's python algo runs as is (entrypoint relative to the pipeline)."""
    from algorun.api import load_pipeline
    from algorun.api.configs import runner_config as build

    examples = REPO / "examples" / "text-transform"
    _, topology = load_pipeline([examples / "pipeline.yaml"])
    node = next(a for a in topology.algos if a.spec is not None and a.spec.name == "reverse")
    config = build(topology, node)
    await create_topics(local_bus, config)
    async with running(config, local_bus, options(workdir=examples)):
        await send(local_bus, config.inputs[0].topics[0].topic, [b"hello"])
        out = await collect(local_bus, config.outputs[0].topic or "", 1)
    assert out[0].value == b"olleh"
    assert header(out[0], contract.CONTENT_TYPE) == "text/plain"


class _BuggyExecutor(Executor):
    """A real executable algo behind an executor with a bug on one input: `run` raises what no executor may
    (not AlgoFailure, not AlgoUnavailable)."""

    def __init__(self, inner: Executor) -> None:
        super().__init__(inner.config)
        self.inner = inner

    async def start(self) -> None:
        await self.inner.start()

    async def run(self, request: Request) -> list[Output]:
        if request.parts[0].data == b"bug":
            raise KeyError("a bug in the runner, not the message's fault")
        return await self.inner.run(request)

    async def close(self) -> None:
        await self.inner.close()


async def test_an_internal_error_stops_the_runner_and_its_message_stays_uncommitted(bus: Bus) -> None:
    """A runner that keeps running after a bug would hold its partition's commits back for good (the message is
    never finished); it stops instead (its process exits 3 and is restarted), and the message is read again."""
    config = runner_config(names(), executor="Executable", entrypoint="tests/algos/exec_upper.sh")
    await create_topics(bus, config)
    source = config.inputs[0].topics[0].topic
    await send(bus, source, [b"a", b"bug", b"c"], partition=0)
    opts = options(concurrency=1)
    runner = Runner(config, opts, bus, _BuggyExecutor(create(config, opts)))
    stop = asyncio.Event()
    await asyncio.wait_for(runner.run(stop), 30)  # returns by itself: nothing here sets `stop`
    assert runner.failed == f"an internal error handling {source}[0]@1"
    out = await collect(bus, config.outputs[0].topic, 1)
    assert b"A" in [m.value for m in out]
    reader = bus.consumer(config.consumer_group, [source])
    try:
        committed = await reader.committed([TopicPartition(source, 0)])
    finally:
        await reader.close()
    assert (committed[TopicPartition(source, 0)] or 0) <= 1, "the message of the internal error was committed"
