"""Every example pipeline, run with `algorun run --until-idle` as a user would: on the embedded local log, and on
the test-bed Kafka. What comes out (webhook deliveries, output topics, dead letters) must equal what the example's
algos compute from its inputs."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from algorun.api import load_pipeline
from algorun.bus import Bus, KafkaSettings, Message, open_bus
from algorun.local.runtime import local_bus_url
from tests.support.connect import KafkaConnect
from tests.support.kafka import KafkaBroker
from tests.support.local_mode import Receiver, run_until_idle, running_pipeline, webhook_receiver
from tests.support.paths import EXAMPLES
from tests.support.procs import StartError, wait_for

pytestmark = pytest.mark.timeout(600)

BUSES = ["local", "kafka"]


@pytest.fixture(params=BUSES)
def on_kafka(request: pytest.FixtureRequest) -> KafkaBroker | None:
    """None for the embedded local log; the broker for Kafka (started only when a test needs it)."""
    if request.param == "local":
        return None
    broker: KafkaBroker = request.getfixturevalue("kafka")
    return broker


@pytest.fixture
def receiver(tmp_path: Path) -> Any:
    with webhook_receiver(tmp_path) as r:
        yield r


def _bodies(receiver: Receiver, path: str) -> Counter[str]:
    return Counter(d["body"] for d in receiver.deliveries() if d["path"] == path)


def _read_topic(bus_target: str | KafkaSettings, topic: str, expect: int) -> list[Message]:
    """Every message of `topic`: read until `expect` arrived (or 30 s passed), then once more for any extra."""

    async def read() -> list[Message]:
        bus: Bus = open_bus(bus_target)
        found: list[Message] = []
        try:
            async with bus.consumer(None, [topic]) as consumer, asyncio.timeout(30):
                while len(found) < expect:
                    found += await consumer.getmany(max_messages=100, max_wait=0.5)
                found += await consumer.getmany(max_messages=100, max_wait=1.0)
        except TimeoutError:
            pass
        finally:
            await bus.close()
        return found

    return asyncio.run(read())


def _target(state: Path, kafka: KafkaBroker | None) -> str | KafkaSettings:
    return local_bus_url(state) if kafka is None else KafkaSettings(bootstrap_servers=kafka.bootstrap())


def test_text_transform(tmp_path: Path, receiver: Receiver, on_kafka: KafkaBroker | None) -> None:
    folder = receiver.examples / "text-transform"
    result = run_until_idle([folder / "pipeline.yaml"], tmp_path / "state", inputs=["text=input.txt"], kafka=on_kafka)
    assert result.returncode == 0, result.stdout + result.stderr
    text = (folder / "input.txt").read_text()
    words = {"words": len(text.split()), "lines": len(text.splitlines()), "chars": len(text)}
    assert _bodies(receiver, "/results") == Counter({text.upper()[::-1]: 1, json.dumps(words): 1})
    assert all(d["headers"].get("X-Demo") == "text-transform" for d in receiver.deliveries())


def test_send_topics_and_tail_on_a_running_pipeline(tmp_path: Path, receiver: Receiver) -> None:
    """The helpers a user reaches for while a pipeline runs: send data, list the topics, read one."""
    folder = receiver.examples / "text-transform"
    state = tmp_path / "state"
    with running_pipeline([folder / "pipeline.yaml"], state, tmp_path / "run.log") as (_, ports):
        cli = [sys.executable, "-m", "algorun.cli.main"]
        url = f"http://127.0.0.1:{ports.http}"
        sent = subprocess.run(
            [*cli, "send", str(folder / "pipeline.yaml"), "text", "-", "--url", url],
            input="hello send",
            capture_output=True,
            text=True,
            check=True,
        )
        answer = json.loads(sent.stdout)
        wait_for(lambda: len(receiver.deliveries()) >= 2, timeout=60, what="the two results")
        listing = subprocess.run(
            [*cli, "topics", "--state-dir", str(state)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "COLUMNS": "200"},  # the table folds long names to the terminal's width
        )
        assert answer["topic"] in listing.stdout
        tailed = subprocess.run(
            [*cli, "tail", "--state-dir", str(state), answer["topic"], "-n", "1", "--idle", "10"],
            capture_output=True,
            text=True,
            check=True,
        )
        (line,) = tailed.stdout.splitlines()
        message = json.loads(line)
        assert message["value"] == "hello send" and message["headers"]["traceID"] == answer["traceID"]
    assert {d["traceID"] for d in receiver.deliveries()} == {answer["traceID"]}


def test_fan_out_fan_in(tmp_path: Path, receiver: Receiver, on_kafka: KafkaBroker | None) -> None:
    folder = receiver.examples / "fan-out-fan-in"
    inputs = [f"orders=input/order-{n}.json" for n in (1, 2, 3)]
    result = run_until_idle([folder / "pipeline.yaml"], tmp_path / "state", inputs=inputs, kafka=on_kafka)
    assert result.returncode == 0, result.stdout + result.stderr
    expected = [
        {"id": "o-1", "from": "valid", "score": 1.0, "flag": True},
        {"id": "o-2", "from": "valid", "score": 1.0, "flag": True},
        {"id": "o-3", "from": "valid", "score": 0.0, "flag": False},
        {"id": "o-1", "from": "enriched", "score": 0.75, "flag": False},
        {"id": "o-2", "from": "enriched", "score": 0.04, "flag": False},
        {"id": "o-3", "from": "enriched", "score": -0.005, "flag": False},
    ]
    key = lambda s: (s["id"], s["from"])  # noqa: E731
    for hook_path in ("/orders/scores", "/audit"):
        got = [json.loads(line) for body in _bodies(receiver, hook_path).elements() for line in body.splitlines()]
        assert sorted(got, key=key) == sorted(expected, key=key), hook_path


def test_retries_then_dead_letters(tmp_path: Path, receiver: Receiver, on_kafka: KafkaBroker | None) -> None:
    folder = receiver.examples / "retry-dead-letter"
    inputs = [f"charges=input/charge-{n}.json" for n in (1, 2, 3)]
    state = tmp_path / "state"
    result = run_until_idle([folder / "pipeline.yaml"], state, inputs=inputs, kafka=on_kafka)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 message(s) dead-lettered" in result.stdout
    receipts = sorted(json.loads(b)["id"] for b in _bodies(receiver, "/receipts").elements())
    assert receipts == ["c-1", "c-2"]  # c-2 failed once (503) and went through on its retry
    _, topology = load_pipeline([folder / "pipeline.yaml"])
    dead_letter_topic = topology.retry_plan(topology.algos[0]).dead_letter_topic
    (dead,) = _read_topic(_target(state, on_kafka), dead_letter_topic, 1)
    assert json.loads(dead.value)["id"] == "c-3"
    assert b"402" in (dead.header("errorMessage") or b""), dead.headers


def test_original_sample(tmp_path: Path, on_kafka: KafkaBroker | None) -> None:
    folder = EXAMPLES / "original-sample"
    state = tmp_path / "state"
    result = run_until_idle(
        [folder / "pipeline.yaml", folder / "sample-algo.yaml"],
        state,
        inputs=["input/text.txt"],
        kafka=on_kafka,
        extra=["--algo", "tests/test-text-transform-http=python3 algos/text_transform.py --port 8080"],
    )
    assert result.returncode == 0, result.stdout + result.stderr
    _, topology = load_pipeline([folder / "pipeline.yaml", folder / "sample-algo.yaml"])
    (out,) = [t.name for t in topology.topics.values() if "test-text-transform-http" in t.name]
    (message,) = _read_topic(_target(state, on_kafka), out, 1)
    assert message.value == (folder / "input" / "text.txt").read_bytes().upper()


def test_data_connectors_need_kafka_connect(tmp_path: Path) -> None:
    result = run_until_idle([EXAMPLES / "data-connector" / "pipeline.yaml"], tmp_path / "state")
    assert result.returncode == 1
    assert "pass --kafka HOST:PORT and --connect URL" in result.stdout + result.stderr


def test_data_connectors_on_kafka_connect(tmp_path: Path, kafka: KafkaBroker, kafka_connect: KafkaConnect) -> None:
    """A FileStreamSource feeds the pipeline, a FileStreamSink writes its output: the example, with its file paths
    moved into the test's folder and its names made unique on the shared broker."""
    folder = tmp_path / "data-connector"
    shutil.copytree(EXAMPLES / "data-connector", folder)
    source, sink = tmp_path / "in.txt", tmp_path / "out.txt"
    lines = ["  Hello World  ", "ALGORUN", "  Mixed Case Line"]
    source.write_text("\n".join(lines) + "\n")
    pipeline = folder / "pipeline.yaml"
    text = pipeline.read_text().replace("/data/in.txt", str(source)).replace("/data/out.txt", str(sink))
    pipeline.write_text(text.replace("deploymentName: file-copy", f"deploymentName: {kafka.unique_topic('copy')}"))
    extra = ["--connect", kafka_connect.url]
    with running_pipeline([pipeline], tmp_path / "state", tmp_path / "run.log", kafka=kafka, extra=extra, ready=None):
        try:
            wait_for(
                lambda: sink.exists() and len(sink.read_text().splitlines()) >= len(lines),
                timeout=120,
                what="the sink connector's file",
            )
        except StartError as e:
            statuses = {n: kafka_connect.request("GET", f"/connectors/{n}/status") for n in _connectors(kafka_connect)}
            logs = {p.name: p.read_text()[-3000:] for p in (tmp_path / "state" / "logs").glob("*.log")}
            run_log = (tmp_path / "run.log").read_text()
            raise AssertionError(f"{e}\nconnectors: {statuses}\nrun: {run_log}\n{logs}") from e
    assert sink.read_text().splitlines() == [line.strip().lower() for line in lines]
    # Ctrl-C took the run's connectors off the worker with it.
    assert not _connectors(kafka_connect)


def _connectors(connect: KafkaConnect) -> list[str]:
    return [name for name in connect.request("GET", "/connectors") if "file-" in name]
