"""The `bus` fixture: one fresh bus per test, parametrized over both backends (the conformance suite)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from algorun.bus import Bus, KafkaSettings, open_bus
from tests.support.bus_settings import kafka_settings


@pytest.fixture(params=["local", "kafka"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def new_name() -> Callable[[str], str]:
    """Unique topic and group names, so tests sharing one broker never see each other's data."""

    def make(prefix: str = "t") -> str:
        return f"algorun-test-{prefix}-{uuid.uuid4().hex[:10]}"

    return make


@pytest.fixture
def bus_target(backend: str, request: pytest.FixtureRequest, tmp_path: object) -> str | KafkaSettings:
    if backend == "local":
        return f"local://{tmp_path}/log.db"
    return kafka_settings(request)


@pytest.fixture
async def bus(bus_target: str | KafkaSettings) -> AsyncIterator[Bus]:
    b = open_bus(bus_target)
    try:
        yield b
    finally:
        await b.close()
