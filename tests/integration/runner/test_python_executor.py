"""End to end on a bus: the python executor, staging, retries, dead letters, replay."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from algorun.bus import Bus, contract
from algorun.runner.replay import replay
from algorun.telemetry.logs import current_trace_id
from tests.support.runner_configs import names, runner_config
from tests.support.runner_harness import collect, create_topics, header, nothing_more, options, running, send
from tests.support.waiting import wait_until


async def test_each_input_gets_its_output_with_the_inherited_headers(bus: Bus) -> None:
    n = names()
    config = runner_config(n)
    await create_topics(bus, config)
    values = [f"msg-{i}".encode() for i in range(50)]
    async with running(config, bus):
        await send(bus, n["input"], values, trace=lambda i: f"{i:032x}", extra=[("x-custom", b"kept")])
        out = await collect(bus, n["output"], 50)
    assert sorted(m.value for m in out) == sorted(v.upper() for v in values)
    first = next(m for m in out if m.value == b"MSG-7")
    assert header(first, contract.TRACE_ID) == f"{7:032x}"
    assert first.key == f"{7:032x}".encode()
    assert header(first, "x-custom") == "kept"
    assert header(first, contract.CONTENT_TYPE) == "text/plain"
    assert header(first, contract.MESSAGE_DATA_TYPE) == "Embedded"
    assert header(first, contract.RUN) == "true"


async def test_staged_parts_run_once_with_their_trigger(local_bus: Bus) -> None:
    n = names()
    config = runner_config(n)
    await create_topics(local_bus, config)
    trace = "ab" * 16
    async with running(config, local_bus):
        await send(local_bus, n["input"], [b"one-", b"two-"], trace=lambda i: trace, run=False)
        await send(local_bus, n["input"], [b"three"], trace=lambda i: trace)
        await send(local_bus, n["input"], [b"x", b""], trace=lambda i: "cd" * 16, run=False)
        await send(local_bus, n["input"], [b""], trace=lambda i: "cd" * 16)  # trigger-only
        out = await collect(local_bus, n["output"], 2)
    by_trace = {header(m, contract.TRACE_ID): m.value for m in out}
    assert by_trace == {trace: b"ONE-TWO-THREE", "cd" * 16: b"X"}


async def test_simple_retries_then_dead_letter_with_error_then_replay(local_bus: Bus, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    fixed = tmp_path / "fixed"
    monkeypatch.setenv("ALGORUN_TEST_FIXED", str(fixed))
    n = names()
    config = runner_config(
        n,
        entrypoint="tests.algos.pyalgos:poison",
        retry={
            "strategy": "Simple",
            "steps": [
                {"index": 0, "backoffDuration": "10ms", "repeat": 1},
                {"index": 1, "backoffDuration": "20ms", "repeat": 2},
            ],
        },
    )
    await create_topics(local_bus, config)
    async with running(config, local_bus) as r:
        await send(local_bus, n["input"], [b"a", b"poison", b"b", b"c"])
        out = await collect(local_bus, n["output"], 3)
        dead = await collect(local_bus, n["dlq"], 1)
        assert sorted(m.value for m in out) == [b"A", b"B", b"C"]
        d = dead[0]
        assert d.value == b"poison"
        assert header(d, contract.ERROR_TYPE) == "ValueError"
        assert "cannot digest poison" in (header(d, contract.ERROR_MESSAGE) or "")
        assert header(d, contract.ERROR_TOPIC) == n["input"]
        assert header(d, contract.ERROR_OFFSET) == "1"
        retries = r.metrics.registry.get_sample_value(
            "algorunner_retry_total", {**r.metrics.labels, "step": "1", "repeat": "2"}
        )
        assert retries == 1.0
        assert r.metrics.registry.get_sample_value("algorunner_dlq_total", r.metrics.labels) == 1.0
        fixed.touch()
        result = await replay(config, local_bus, idle_seconds=0.5)
        assert result.replayed == 1
        assert result.targets == {n["input"]: 1}  # Simple has no retry topic: back to the source topic
        out = await collect(local_bus, n["output"], 4)
    assert sorted(m.value for m in out) == [b"A", b"B", b"C", b"POISON"]


async def test_stopping_during_a_retry_backoff_leaves_the_message_to_the_next_runner(
    local_bus: Bus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A stop while a failed message waits out an hour's backoff does not wait for it (nor for the grace period):
    the message and the one queued behind it stay uncommitted, and the next runner processes both."""
    fixed = tmp_path / "fixed"
    monkeypatch.setenv("ALGORUN_TEST_FIXED", str(fixed))
    n = names()
    config = runner_config(
        n,
        entrypoint="tests.algos.pyalgos:poison",
        retry={"strategy": "Simple", "steps": [{"index": 0, "backoffDuration": "1h", "repeat": 1}]},
    )
    await create_topics(local_bus, config)
    async with running(config, local_bus) as r:
        await send(local_bus, n["input"], [b"a", b"poison", b"b"])
        await collect(local_bus, n["output"], 1)
        labels = {**r.metrics.labels, "step": "0", "repeat": "1"}
        await wait_until(
            lambda: r.metrics.registry.get_sample_value("algorunner_retry_total", labels) == 1.0, 10, "the retry"
        )
    assert "grace" not in caplog.text
    lag = await local_bus.lag(n["group"], [n["input"]])
    assert sum(x.lag for x in lag.values()) == 2  # "a" committed; "poison" and "b" left
    fixed.touch()
    async with running(config, local_bus):
        out = await collect(local_bus, n["output"], 3)
    assert sorted(m.value for m in out) == [b"A", b"B", b"POISON"]


async def test_retry_disabled_dead_letters_at_once_whatever_the_strategy_says(local_bus: Bus) -> None:
    """`retryEnabled: false` with a RetryTopics plan configured: the failed message goes straight to the
    dead-letter topic (never to the retry topic, never dropped) and the next one is processed."""
    n = names()
    retry_topic = n["retry"] + "-1s"
    config = runner_config(
        n,
        entrypoint="tests.algos.pyalgos:poison",
        retry={"strategy": "RetryTopics", "steps": [{"index": 0, "backoffDuration": "1s", "repeat": 3}]},
        retry_topics={"1s": retry_topic},
        retry_enabled=False,
    )
    await create_topics(local_bus, config)
    async with running(config, local_bus) as r:
        await send(local_bus, n["input"], [b"poison", b"ok"])
        [out] = await collect(local_bus, n["output"], 1)
        [dead] = await collect(local_bus, n["dlq"], 1)
        assert r.metrics.registry.get_sample_value("algorunner_dlq_total", r.metrics.labels) == 1.0
        assert not any(s.value for f in r.metrics.registry.collect() if f.name == "algorunner_retry" for s in f.samples)
    assert out.value == b"OK"
    assert (dead.value, header(dead, contract.ERROR_TYPE)) == (b"poison", "ValueError")
    await nothing_more(local_bus, retry_topic, 0, wait=0.2)


async def test_a_simple_retry_waits_in_its_partition_only(local_bus: Bus) -> None:
    """A message waiting out a Simple backoff holds back the messages behind it in its partition (order), and
    nothing else: the other partition's messages are processed meanwhile."""
    n = names()
    config = runner_config(
        n,
        entrypoint="tests.algos.pyalgos:poison",
        retry={"strategy": "Simple", "steps": [{"index": 0, "backoffDuration": "1h", "repeat": 1}]},
    )
    await create_topics(local_bus, config, partitions=2)
    async with running(config, local_bus):
        await send(local_bus, n["input"], [b"poison", b"behind"], partition=0)
        await send(local_bus, n["input"], [f"other-{i}".encode() for i in range(10)], partition=1)
        out = await collect(local_bus, n["output"], 10)
        assert sorted(m.value for m in out) == sorted(f"OTHER-{i}".encode() for i in range(10))
        await nothing_more(local_bus, n["output"], 10, wait=0.3)  # "behind" waits behind the poison


async def test_key_concurrency_overlaps_keys_and_keeps_each_keys_order(local_bus: Bus) -> None:
    """With key concurrency, one partition's keys run side by side (the last key's first output comes before
    the first key's last), and each key's outputs keep their input order."""
    n = names()
    config = runner_config(n, entrypoint="tests.algos.pyalgos:slow_async_upper")
    await create_topics(local_bus, config)
    keys = [f"{k:032x}" for k in range(4)]
    values = [f"{k}-{i:02d}".encode() for k in range(4) for i in range(20)]  # every message of key 0 first
    async with running(config, local_bus, options(key_concurrency=True)):
        await send(local_bus, n["input"], values, trace=lambda i: keys[i // 20])
        out = await collect(local_bus, n["output"], len(values))
    order = [m.value for m in out]
    for k in range(4):
        assert [v for v in order if v.startswith(f"{k}-".encode())] == [v.upper() for v in values[k * 20 : k * 20 + 20]]
    assert order.index(b"3-00") < order.index(b"0-19")


async def test_metrics_count_every_message_of_the_batched_path(bus: Bus) -> None:
    """The inline path counts per fetched batch, not per message: the exported values must still be exact."""
    n = names()
    config = runner_config(n, entrypoint="tests.algos.pyalgos:poison", retry_enabled=False)
    await create_topics(bus, config)
    values = [f"value-{i}".encode() for i in range(200)]
    inputs = [*values[:120], b"poison", *values[120:]]
    name = config.inputs[0].name
    async with running(config, bus) as r:
        labels = r.metrics.labels

        def sample(metric: str, **extra: str) -> float:
            return r.metrics.registry.get_sample_value(metric, {**labels, **extra}) or 0.0

        await send(bus, n["input"], inputs)
        await collect(bus, n["output"], 200)
        await collect(bus, n["dlq"], 1)
        await wait_until(
            lambda: sample("algorunner_run_duration_seconds_count") == 201, 30, "201 finished runs in the metrics"
        )
        assert sample("algorunner_messages_total", input=name, outcome="ok") == 200
        assert sample("algorunner_messages_total", input=name, outcome="dead_letter") == 1
        assert sample("algorunner_algo_duration_seconds_count") == 201
        read = sum(map(len, inputs))
        assert sample("algorunner_msg_bytes_input_total", input=name, status="ok") == read
        assert sample("algorunner_data_bytes_input_total", input=name, status="ok") == read
        assert sample("algorunner_msg_bytes_output_total", output="out", status="ok") == sum(map(len, values))
        assert r.metrics.registry.get_sample_value("kafka_client_ack_cnt_total", {"topic": n["output"]}) == 200


async def test_the_output_key_and_trace_id_follow_any_input_trace_id(local_bus: Bus) -> None:
    """The short path reuses the input's traceID bytes as the output's key and traceID when they are ASCII; any
    other id (UTF-8 or not) is decoded and encoded again, as the general path does, and a missing one is new."""
    n = names()
    config = runner_config(n)
    await create_topics(local_bus, config)
    traces: dict[bytes, bytes | None] = {
        b"a": b"0af7651916cd43dd8448eb211c80319c",
        b"b": "trâce-ü".encode(),
        b"c": b"\xff\xfeid",
        b"d": None,
    }
    async with local_bus.producer() as p:
        for value, trace in traces.items():
            headers = [] if trace is None else [(contract.TRACE_ID, trace)]
            await p.send(n["input"], value, headers=[*headers, (contract.RUN, b"true")])
    async with running(config, local_bus):
        out = {m.value: m for m in await collect(local_bus, n["output"], len(traces))}
    expected = {
        b"A": "0af7651916cd43dd8448eb211c80319c",
        b"B": "trâce-ü",
        b"C": b"\xff\xfeid".decode("utf-8", "replace"),
    }
    for value, trace_id in expected.items():
        assert header(out[value], contract.TRACE_ID) == trace_id
        assert out[value].key == trace_id.encode()
    new = out[b"D"]
    assert new.key and header(new, contract.TRACE_ID) == new.key.decode()
    assert len({m.key for m in out.values()}) == len(traces)


class _TraceOfEachLine(logging.Handler):
    """Records (message, the traceID its log line would carry) for every line."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[tuple[str, str | None]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.getMessage(), current_trace_id()))


async def test_log_lines_of_an_algo_and_of_its_failures_carry_the_message_trace_id(local_bus: Bus) -> None:
    """Runs of a fetched batch take the inline loop, one after another: each log line the algo writes, and the
    runner's own line about a failed run, carry that message's traceID; lines after the loop carry none."""
    n = names()
    config = runner_config(n, entrypoint="tests.algos.pyalgos:logged_upper", retry_enabled=False)
    await create_topics(local_bus, config)
    values = [b"a0", b"a1", b"fail2", b"a3", b"a4"]
    await send(local_bus, n["input"], values, trace=lambda i: f"{i:032x}", partition=0)
    lines = _TraceOfEachLine()
    root = logging.getLogger()
    root.addHandler(lines)
    previous = root.level
    root.setLevel(logging.INFO)
    try:
        async with running(config, local_bus):
            await collect(local_bus, n["output"], 4)
            await collect(local_bus, n["dlq"], 1)
            logging.getLogger("tests").info("after the runs")
    finally:
        root.removeHandler(lines)
        root.setLevel(previous)
    handled = {text.removeprefix("handling "): trace for text, trace in lines.lines if text.startswith("handling ")}
    assert handled == {v.decode(): f"{i:032x}" for i, v in enumerate(values)}
    failed = [trace for text, trace in lines.lines if text.startswith("run failed")]
    assert failed == [f"{2:032x}"]
    assert ("after the runs", None) in lines.lines
