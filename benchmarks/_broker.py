"""The Kafka broker a benchmark measures against (not a benchmark: `make bench` skips `_*.py`).

BENCH_KAFKA=host:port names a standing broker. Otherwise a throwaway test-bed broker (tests.support.kafka) is
started, and stopped afterwards with its log directory removed: a run of `benchmarks/bus.py` alone writes a few
GB there, which each `make bench` used to leave behind in the temporary directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def kafka_bootstrap(workdir: Path | None = None) -> Iterator[str]:
    """The bootstrap address of the broker to use; a started one keeps its log under `workdir` (by default a
    new temporary directory), and both go when the block ends."""
    given = os.environ.get("BENCH_KAFKA")
    if given:
        yield given
        return
    from tests.support import testbin
    from tests.support.kafka import start_kafka

    logdir = Path(tempfile.mkdtemp(prefix="algorun-bench-kafka-", dir=workdir))
    broker = start_kafka(testbin.root() / "kafka" / "libs", logdir)
    try:
        yield broker.bootstrap("PLAINTEXT")
    finally:
        broker.stop()
        shutil.rmtree(logdir, ignore_errors=True)
