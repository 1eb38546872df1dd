"""Fixtures of the endpoint tests: the shared broker's address, and a private broker that tests may stop."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.restartable_broker import RestartableBroker
from tests.support.testbed_fixtures import require


@pytest.fixture
def bootstrap(kafka: object) -> str:
    return kafka.bootstrap("PLAINTEXT")  # type: ignore[attr-defined,no-any-return]


@pytest.fixture(scope="module")
def outage_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RestartableBroker]:
    """A broker of its own (the session one is shared and must never stop); restarted after each test."""
    libs = require("kafka")
    broker = RestartableBroker(libs, tmp_path_factory.mktemp("outage-kafka"))
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture
def restartable(outage_broker: RestartableBroker) -> Iterator[RestartableBroker]:
    yield outage_broker
    if not outage_broker.running:
        outage_broker.start()


@pytest.fixture
def wal_dir(tmp_path: Path) -> Path:
    return tmp_path / "wal"
