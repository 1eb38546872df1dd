"""Reliability on a real Kafka broker with the runner as a process: kill -9, SIGTERM drain, algo down, broker
restart. Counts are printed (pytest -s) for the report."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from algorun.api.configs import RunnerConfig
from algorun.bus import Bus, KafkaSettings, TopicPartition, contract, open_bus
from tests.algos.http_algo import start_http_algo
from tests.support.procs import free_port
from tests.support.runner_configs import names, runner_config
from tests.support.runner_harness import collect, create_topics, send
from tests.support.runner_process import RunnerProcess
from tests.support.waiting import wait_until as until

pytestmark = pytest.mark.integration


@pytest.fixture
def procs() -> Iterator[list[RunnerProcess]]:
    started: list[RunnerProcess] = []
    yield started
    for p in started:
        p.stop()


def url(settings: KafkaSettings) -> str:
    return f"kafka://{settings.bootstrap_servers}"


async def fed_runner(
    bus: Bus,
    settings: KafkaSettings,
    workdir: Path,
    procs: list[RunnerProcess],
    prefix: str,
    algo: str,
    total: int,
    env: dict[str, str] | None = None,
) -> tuple[dict[str, str], RunnerConfig, RunnerProcess]:
    """`total` messages (m00000, m00001, ...) on a 3-partition input, and a runner process for the
    `tests.algos.pyalgos` function `algo` started on them: (topic names, config, process)."""
    n = names(prefix)
    config = runner_config(n, entrypoint=f"tests.algos.pyalgos:{algo}")
    await create_topics(bus, config, partitions=3)
    await send(bus, n["input"], [f"m{i:05d}".encode() for i in range(total)])
    runner = RunnerProcess(config, url(settings), workdir, env=env)
    procs.append(runner)
    return n, config, runner


async def count_outputs(
    bus: Bus,
    topic: str,
    expected: int,
    timeout: float,  # noqa: ASYNC109
    runner: RunnerProcess | None = None,
) -> Counter[bytes]:
    """Every value of `topic` and how often, once `expected` distinct values arrived (or fail after `timeout`).

    With `runner`, fail at once (with its log) if that process exits, and show its log on a timeout: a runner
    that died at startup must not look like a slow one."""
    consumer = bus.consumer(None, [topic])
    counts: Counter[bytes] = Counter()
    deadline = time.monotonic() + timeout
    try:
        while len(counts) < expected:
            if runner is not None and runner.exited() is not None:
                raise AssertionError(f"the runner exited with {runner.exited()}:\n{runner.log()}")
            if time.monotonic() > deadline:
                log = f"\n{runner.log()}" if runner is not None else ""
                raise AssertionError(f"{topic}: {len(counts)} of {expected} distinct values within {timeout}s{log}")
            counts.update(m.value for m in await consumer.getmany(max_messages=5000, max_wait=0.2))
        counts.update(m.value for m in await consumer.getmany(max_messages=5000, max_wait=0.5))
    finally:
        await consumer.close()
    return counts


async def test_kill_9_mid_stream_loses_nothing_and_repeats_only_the_uncommitted(
    kafka_bus: Bus, kafka_settings: KafkaSettings, tmp_path: Path, procs: list[RunnerProcess]
) -> None:
    """kill -9 while 10,000 messages flow, then restart: every input has an output, and the only outputs written
    twice are of inputs at or past the offset the group had committed at the kill (the in-flight window)."""
    total = 10_000
    n, config, first = await fed_runner(kafka_bus, kafka_settings, tmp_path, procs, "kill", "slow_upper", total)
    consumer = kafka_bus.consumer(None, [n["output"]])
    seen = 0
    deadline = time.monotonic() + 60
    # Kill once a third of the outputs exist and the group has committed some of them, so that the window
    # checked below is a part of the stream, not all of it.
    while seen < total // 3 or not await committed_any(kafka_bus, n["group"], n["input"]):
        assert time.monotonic() < deadline, first.log()
        seen += len(await consumer.getmany(max_messages=5000, max_wait=0.1))
    first.kill9()
    await consumer.close()
    at_kill = {tp: lag.committed or 0 for tp, lag in (await kafka_bus.lag(n["group"], [n["input"]])).items()}
    assert seen < total, "the stream had ended before the kill: nothing was in flight"
    second = RunnerProcess(config, url(kafka_settings), tmp_path)
    procs.append(second)
    # The killed member keeps its partitions until its session times out (6 s, processes.py): wait for the
    # restarted runner to own them (failing with its log if it exits), then for the outputs.
    await asyncio.to_thread(second.wait_ready, 60)
    counts = await count_outputs(kafka_bus, n["output"], total, timeout=90, runner=second)
    missing = {f"M{i:05d}".encode() for i in range(total)} - set(counts)
    assert not missing
    where = {m.value.upper(): (m.tp, m.offset) for m in await collect(kafka_bus, n["input"], total)}
    repeated = [v for v, c in counts.items() if c > 1]
    committed_before = [v for v in repeated if where[v][1] < at_kill[where[v][0]]]
    assert not committed_before, f"outputs of committed inputs written again: {committed_before[:5]}"
    window = total - sum(at_kill.values())
    duplicates = sum(c - 1 for c in counts.values())
    print(f"\nkill -9 after {seen} of {total} outputs: {duplicates} duplicates, uncommitted window {window}")
    assert duplicates <= window
    assert second.terminate() == 0


async def test_exactly_once_survives_kill_9_mid_transaction(
    kafka_bus: Bus, kafka_settings: KafkaSettings, tmp_path: Path, procs: list[RunnerProcess]
) -> None:
    """With --exactly-once, kill -9 while batches are inside transactions, restart: a read-committed reader sees
    every output exactly once (the interrupted transaction's writes are aborted with its offsets). The restarted
    runner keeps its instance name (as a StatefulSet pod does): its transactional id fences the dead one's at
    once instead of after the transaction timeout."""
    total = 3_000
    env = {"ALGORUN_RUNNER_EXACTLY_ONCE": "true", "INSTANCE_NAME": "runner-0"}
    n, config, first = await fed_runner(
        kafka_bus, kafka_settings, tmp_path, procs, "eos-kill", "slow_async_upper", total, env
    )
    consumer = kafka_bus.consumer(None, [n["output"]])  # reads committed data only
    seen = 0
    deadline = time.monotonic() + 60
    pending = OpenWrites(kafka_settings.bootstrap_servers, n["output"])
    try:
        # Kill once a third is committed and an open transaction holds a hundred writes.
        while seen < total // 3 or await asyncio.to_thread(pending.count) < 100:
            assert time.monotonic() < deadline, first.log()
            seen += len(await consumer.getmany(max_messages=5000, max_wait=0.05))
        first.kill9()
    finally:
        pending.close()
    await consumer.close()
    assert seen < total, "the stream had ended before the kill: no transaction was open"
    second = RunnerProcess(config, url(kafka_settings), tmp_path, env=env)
    procs.append(second)
    await asyncio.to_thread(second.wait_ready, 60)
    counts = await count_outputs(kafka_bus, n["output"], total, timeout=90, runner=second)
    assert set(counts) == {f"M{i:05d}".encode() for i in range(total)}
    written = await asyncio.to_thread(records_written, kafka_settings.bootstrap_servers, n["output"])
    print(f"\nexactly-once, kill -9 after {seen} of {total}: {written - total} aborted writes, none visible")
    assert written > total, "no write of the interrupted transaction reached the broker: nothing was aborted"
    assert [v for v, c in counts.items() if c > 1] == []
    assert second.terminate() == 0


class OpenWrites:
    """How many records of `topic` sit in open transactions: the partitions' ends (high watermarks) minus their
    last stable offsets, which is the end a read-committed client is told."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        from confluent_kafka import Consumer

        self.topic = topic
        self._uncommitted = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": "watermarks", "isolation.level": "read_uncommitted"}
        )
        self._committed = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": "watermarks", "isolation.level": "read_committed"}
        )

    def count(self) -> int:
        from confluent_kafka import TopicPartition as TP

        parts = self._uncommitted.list_topics(self.topic, timeout=10).topics[self.topic].partitions
        total = 0
        for p in parts:
            total += self._uncommitted.get_watermark_offsets(TP(self.topic, p), timeout=10)[1]
            total -= self._committed.get_watermark_offsets(TP(self.topic, p), timeout=10)[1]
        return total

    def close(self) -> None:
        self._uncommitted.close()
        self._committed.close()


def records_written(bootstrap: str, topic: str, timeout: float = 30.0) -> int:
    """How many data records `topic` holds, aborted transactions' included (a read-uncommitted count)."""
    from confluent_kafka import Consumer
    from confluent_kafka import TopicPartition as TP

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "count", "isolation.level": "read_uncommitted"})
    try:
        tps = [TP(topic, p, 0) for p in c.list_topics(topic, timeout=10).topics[topic].partitions]
        ends = [c.get_watermark_offsets(tp, timeout=10)[1] for tp in tps]
        c.assign(tps)
        count = 0
        deadline = time.monotonic() + timeout
        # Read until every partition's position passes its end (transaction markers move it without a record).
        while any(pos.offset < end for pos, end in zip(c.position(tps), ends, strict=True)):
            assert time.monotonic() < deadline, f"{topic}: not read to its end within {timeout}s"
            count += sum(1 for m in c.consume(1000, 0.2) if m.error() is None)
        return count
    finally:
        c.close()


async def caught_up(bus: Bus, group: str, tp: TopicPartition) -> bool:
    """`group` committed everything of `tp`."""
    return (await bus.lag(group, [tp.topic]))[tp].lag == 0


async def committed_any(bus: Bus, group: str, topic: str) -> bool:
    return any(lag.committed for lag in (await bus.lag(group, [topic])).values())


async def test_staged_parts_stay_uncommitted_and_survive_kill_9(
    kafka_bus: Bus, kafka_settings: KafkaSettings, tmp_path: Path, procs: list[RunnerProcess]
) -> None:
    """Parts staged with run=false hold their partition's commit back while later messages are processed and
    committed elsewhere; kill -9 and restart: the trigger still runs with every part (none was lost)."""
    n = names("stage-kill")
    config = runner_config(n)
    await create_topics(kafka_bus, config, partitions=2)
    first = RunnerProcess(config, url(kafka_settings), tmp_path)
    procs.append(first)
    await asyncio.to_thread(first.wait_ready, 60)
    trace = "ab" * 16
    await send(kafka_bus, n["input"], [b"one-", b"two-"], trace=lambda i: trace, run=False)
    later = [f"later-{i}".encode() for i in range(20)]  # their traceIDs spread them over both partitions
    await send(kafka_bus, n["input"], later)
    await count_outputs(kafka_bus, n["output"], len(later), timeout=30, runner=first)
    inputs = await collect(kafka_bus, n["input"], 2 + len(later))
    staged = next(m for m in inputs if m.value == b"one-")
    other = TopicPartition(n["input"], 1 - staged.partition)
    # A message on the other partition, sent after every output above exists: once it is committed, a commit
    # was made after all of them were acknowledged.
    producer = kafka_bus.producer()
    try:
        probe = contract.first_hop(trace_id=contract.new_trace_id(), run=True, content_type="text/plain")
        await producer.produce(n["input"], b"probe", headers=probe, partition=other.partition)
    finally:
        await producer.close()
    await until(lambda: caught_up(kafka_bus, n["group"], other), 30, "the other partition's commit")
    lags = await kafka_bus.lag(n["group"], [n["input"]])
    held = lags[TopicPartition(n["input"], staged.partition)].committed
    assert held is None or held <= staged.offset, "the staged parts' offsets were committed before their run"
    first.kill9()
    second = RunnerProcess(config, url(kafka_settings), tmp_path)
    procs.append(second)
    await asyncio.to_thread(second.wait_ready, 60)
    await send(kafka_bus, n["input"], [b"three"], trace=lambda i: trace)
    # Distinct values: the restarted runner rewrites the staged partition's later outputs (their commit was held back
    # with the staged parts'), and those duplicates must not stand in for the trigger's output.
    seen = await count_outputs(kafka_bus, n["output"], len(later) + 2, timeout=60, runner=second)
    outputs = await collect(kafka_bus, n["output"], sum(seen.values()))
    assert [m.value for m in outputs if contract.get(m.headers, contract.TRACE_ID) == trace] == [b"ONE-TWO-THREE"]
    assert second.terminate() == 0


async def test_sigterm_drains_commits_and_exits_0(
    kafka_bus: Bus, kafka_settings: KafkaSettings, tmp_path: Path, procs: list[RunnerProcess]
) -> None:
    n = names("term")
    config = runner_config(n, entrypoint="tests.algos.pyalgos:upper")
    await create_topics(kafka_bus, config)
    runner = RunnerProcess(config, url(kafka_settings), tmp_path)
    procs.append(runner)
    runner.wait_ready()
    status, body = runner.get("/metrics")
    assert status == 200
    assert "algorunner_run_duration_seconds" in body
    assert "process_resident_memory_bytes" in body
    await send(kafka_bus, n["input"], [f"m{i}".encode() for i in range(500)])
    await count_outputs(kafka_bus, n["output"], 500, timeout=30)
    assert runner.terminate() == 0
    lag = await kafka_bus.lag(n["group"], [n["input"]])
    assert sum(x.lag for x in lag.values()) == 0  # everything processed is committed
    again = RunnerProcess(config, url(kafka_settings), tmp_path)
    procs.append(again)
    again.wait_ready()
    await send(kafka_bus, n["input"], [b"last"])
    counts = await count_outputs(kafka_bus, n["output"], 501, timeout=30)
    assert sum(counts.values()) == 501  # nothing ran twice
    assert again.terminate() == 0


async def test_sigterm_mid_stream_finishes_in_flight_runs_and_commits_them(
    kafka_bus: Bus, kafka_settings: KafkaSettings, tmp_path: Path, procs: list[RunnerProcess]
) -> None:
    """SIGTERM while runs of a slow async algo are in flight: the runner stops consuming, finishes them, commits
    and exits 0; a new runner then processes the rest, and no input has two outputs (what the first produced is
    exactly what it committed)."""
    total = 5_000
    n, config, first = await fed_runner(
        kafka_bus, kafka_settings, tmp_path, procs, "term-mid", "slow_async_upper", total
    )
    consumer = kafka_bus.consumer(None, [n["output"]])
    seen = 0
    deadline = time.monotonic() + 60
    while seen < 200:
        assert time.monotonic() < deadline, first.log()
        seen += len(await consumer.getmany(max_messages=5000, max_wait=0.05))
    await consumer.close()
    assert first.terminate() == 0, first.log()
    drained = sum(lag.end for lag in (await kafka_bus.lag("nobody", [n["output"]])).values())
    assert seen < drained < total, "the first runner left nothing for the second: no SIGTERM mid-stream"
    second = RunnerProcess(config, url(kafka_settings), tmp_path)
    procs.append(second)
    await asyncio.to_thread(second.wait_ready, 60)
    counts = await count_outputs(kafka_bus, n["output"], total, timeout=90, runner=second)
    print(f"\nSIGTERM after {seen} of {total} outputs, {drained} when it exited; {sum(counts.values())} in all")
    assert [v for v, c in counts.items() if c > 1] == []
    assert second.terminate() == 0


async def test_metrics_and_logs_of_a_runner_process(
    kafka_bus: Bus, kafka_settings: KafkaSettings, tmp_path: Path, procs: list[RunnerProcess]
) -> None:
    """/metrics after 19 good messages and a poison one (dead-lettered: retries off) counts exactly that, and the
    failure's log line is JSON carrying the message's traceID."""
    n = names("observe")
    config = runner_config(n, entrypoint="tests.algos.pyalgos:poison", retry_enabled=False)
    await create_topics(kafka_bus, config)
    runner = RunnerProcess(config, url(kafka_settings), tmp_path)
    procs.append(runner)
    await asyncio.to_thread(runner.wait_ready, 60)
    good = [f"value-{i:02d}".encode() for i in range(19)]
    poison_trace = "cd" * 16
    await send(kafka_bus, n["input"], good)
    await send(kafka_bus, n["input"], [b"poison"], trace=lambda i: poison_trace)
    await count_outputs(kafka_bus, n["output"], 19, timeout=30, runner=runner)
    await count_outputs(kafka_bus, n["dlq"], 1, timeout=30, runner=runner)

    def sample(text: str, name: str, **labels: str) -> float | None:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    return float(s.value)
        return None

    async def settled() -> bool:  # acknowledged and committed: nothing in flight
        status, text = await asyncio.to_thread(runner.get, "/metrics")
        return status == 200 and sample(text, "algorunner_in_flight_messages") == 0.0

    await until(settled, 30, "the runner to report nothing in flight")
    _, text = await asyncio.to_thread(runner.get, "/metrics")
    out_bytes = sum(len(v) for v in good)
    assert sample(text, "algorunner_run_duration_seconds_count") == 20
    assert sample(text, "algorunner_messages_total", input="in", outcome="ok") == 19
    assert sample(text, "algorunner_messages_total", input="in", outcome="dead_letter") == 1
    assert sample(text, "algorunner_msg_bytes_output_total", output="out", status="ok") == out_bytes
    assert sample(text, "algorunner_data_bytes_output_total", output="out", status="ok") == out_bytes
    assert sample(text, "algorunner_algo_error_total") == 1
    assert sample(text, "algorunner_dlq_total") == 1
    assert sample(text, "kafka_client_ack_cnt_total", topic=n["output"]) == 19
    assert sample(text, "kafka_client_ack_cnt_total", topic=n["dlq"]) == 1
    assert sample(text, "algorunner_consumer_lag", topic=n["input"], partition="0") is not None
    lines = [json.loads(line) for line in runner.log().splitlines() if line.startswith("{")]
    failed = [e for e in lines if e.get("level") == "warning" and "run failed" in e.get("msg", "")]
    assert failed and all(e.get("traceID") == poison_trace for e in failed), failed
    assert runner.terminate() == 0


async def test_algo_down_not_ready_consumes_nothing_then_catches_up(
    kafka_bus: Bus, kafka_settings: KafkaSettings, tmp_path: Path, procs: list[RunnerProcess]
) -> None:
    port = free_port()
    n = names("down")
    config = runner_config(
        n,
        executor="http",
        entrypoint=None,
        input_type="Http",
        input_extra={"http": {"verb": "POST", "port": port, "path": "/upper"}},
        outputs=[{"name": "out", "outputDeliveryType": "HttpResponse", "topic": n["output"]}],
    )
    await create_topics(kafka_bus, config)
    await send(kafka_bus, n["input"], [f"m{i}".encode() for i in range(100)])
    runner = RunnerProcess(config, url(kafka_settings), tmp_path)
    procs.append(runner)
    await until(lambda: runner.get("/health")[0] == 200 if _up(runner) else False, 20, "the health endpoint")
    not_ready = runner.readiness()
    assert not not_ready["ready"]
    assert "algo" in not_ready["notReady"]
    lag = await kafka_bus.lag(n["group"], [n["input"]])
    assert sum(x.lag for x in lag.values()) == 100
    algo = await start_http_algo(port)
    try:
        counts = await count_outputs(kafka_bus, n["output"], 100, timeout=30)
        assert len(counts) == 100
        await until(runner.ready, 10, "readiness once the algo is up")
    finally:
        await algo.cleanup()
    assert runner.terminate() == 0


def _up(runner: RunnerProcess) -> bool:
    try:
        runner.get("/health")
    except OSError:
        return False
    return True


# ---- broker restart: a broker of its own, so the session broker is never disturbed ----


@pytest.fixture
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.support.kafka import start_kafka
    from tests.support.procs import StartError
    from tests.support.testbed_fixtures import require

    libs = require("kafka")
    try:
        broker = start_kafka(libs, tmp_path_factory.mktemp("own-kafka"))
    except StartError:  # tests.support formats with a random cluster id that may start with "-" (reported)
        broker = start_kafka(libs, tmp_path_factory.mktemp("own-kafka"))
    broker.libs = libs
    try:
        yield broker
    finally:
        broker.stop()


def restart(broker: Any) -> None:
    from tests.support.kafka import _listener_ready, java_command
    from tests.support.procs import ManagedProcess

    broker.process.stop()
    proc = ManagedProcess(
        "kafka",
        java_command(broker.libs, "kafka.Kafka", broker.workdir, str(broker.workdir / "server.properties")),
        broker.workdir / "kafka-restarted.log",
    )
    broker.process = proc
    _listener_ready(broker, "PLAINTEXT", 90, proc)


async def test_broker_restart_mid_stream_loses_nothing(
    own_broker: Any, tmp_path: Path, procs: list[RunnerProcess]
) -> None:
    settings = KafkaSettings(
        bootstrap_servers=own_broker.bootstrap("PLAINTEXT"), client_config_overrides={"log_level": 0}
    )
    total = 4000
    n = names("brk")
    config = runner_config(n, entrypoint="tests.algos.pyalgos:upper")
    bus = open_bus(settings)
    try:
        await create_topics(bus, config, partitions=2)
        runner = RunnerProcess(config, url(settings), tmp_path)
        procs.append(runner)
        runner.wait_ready()
        await send(bus, n["input"], [f"m{i:05d}".encode() for i in range(total // 2)])
        await collect(bus, n["output"], total // 4, timeout=30)
    finally:
        await bus.close()
    await asyncio.to_thread(restart, own_broker)
    bus = open_bus(settings)
    try:
        await send(bus, n["input"], [f"m{i:05d}".encode() for i in range(total // 2, total)])
        counts = await count_outputs(bus, n["output"], total, timeout=120)
        assert {f"M{i:05d}".encode() for i in range(total)} <= set(counts)
        print(f"\nbroker restart: {sum(counts.values()) - len(counts)} duplicates of {total}")
        assert runner.terminate() == 0
    finally:
        await bus.close()
    assert sys.platform  # keeps the import used when printing is disabled
