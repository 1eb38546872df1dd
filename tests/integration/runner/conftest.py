"""Fixtures of the runner integration tests: a bus per backend (the local log always; Kafka when the test bed
has it), and per-test unique topic names."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from algorun.bus import Bus, KafkaSettings, open_bus


@pytest.fixture
async def local_bus(tmp_path: Path) -> AsyncIterator[Bus]:
    bus = open_bus(f"local://{tmp_path}/log.db")
    try:
        yield bus
    finally:
        await bus.close()


@pytest.fixture
def kafka_settings(kafka: object) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=kafka.bootstrap("PLAINTEXT"),  # type: ignore[attr-defined]
        client_config_overrides={"log_level": 0},
    )


@pytest.fixture
async def kafka_bus(kafka_settings: KafkaSettings) -> AsyncIterator[Bus]:
    bus = open_bus(kafka_settings)
    try:
        yield bus
    finally:
        await bus.close()


@pytest.fixture(params=["local", pytest.param("kafka", marks=pytest.mark.integration)])
async def bus(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Bus]:
    """Both backends: the local log, and the real Kafka broker of the test bed."""
    if request.param == "local":
        b = open_bus(f"local://{tmp_path}/log.db")
    else:
        b = open_bus(request.getfixturevalue("kafka_settings"))
    try:
        yield b
    finally:
        await b.close()
