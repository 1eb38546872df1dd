"""Acceptance test proving Kafka Connect in the test bed is a real distributed worker."""

from __future__ import annotations

import time
import urllib.error
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer

from tests.support.connect import KafkaConnect
from tests.support.kafka import KafkaBroker

pytestmark = pytest.mark.integration


def test_file_stream_source_moves_lines_into_a_topic(
    kafka: KafkaBroker, kafka_connect: KafkaConnect, tmp_path: Path
) -> None:
    assert "org.apache.kafka.connect.file.FileStreamSourceConnector" in kafka_connect.connector_plugins()
    topic = kafka.unique_topic("connect")
    kafka.create_topic(topic)
    lines = [f"line {i} {uuid.uuid4().hex[:6]}" for i in range(10)]
    source = tmp_path / "input.txt"
    source.write_text("".join(f"{line}\n" for line in lines))
    name = f"file-source-{uuid.uuid4().hex[:8]}"

    kafka_connect.create_connector(
        name,
        {
            "connector.class": "FileStreamSource",
            "tasks.max": "1",
            "file": str(source),
            "topic": topic,
        },
    )
    try:
        consumer = Consumer(
            kafka.client_config("PLAINTEXT", **{"group.id": f"g-{name}", "auto.offset.reset": "earliest"})
        )
        consumer.subscribe([topic])
        got: list[str] = []
        deadline = time.monotonic() + 60
        while len(got) < len(lines) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                got.append((msg.value() or b"").decode())
        consumer.close()
        assert got == lines
        status = kafka_connect.request("GET", f"/connectors/{name}/status")
        assert status["connector"]["state"] == "RUNNING"
    finally:
        try:
            kafka_connect.request("DELETE", f"/connectors/{name}")
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise
