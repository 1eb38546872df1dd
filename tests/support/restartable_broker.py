"""A throwaway Kafka broker that tests may stop and start again (same ports, same data), for outage tests.

The session `kafka` fixture is shared by every test, so it must never be stopped; this one is private to the
tests that need an outage. It reuses tests.support.kafka to configure and start the broker, then restarts the
same command on the same `server.properties` and data directory.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.support.kafka import KafkaBroker, java_command, start_kafka
from tests.support.procs import ManagedProcess, wait_for


class RestartableBroker:
    def __init__(self, libs: Path, workdir: Path) -> None:
        self.libs = libs
        self.workdir = workdir
        self.broker: KafkaBroker = start_kafka(libs, workdir)
        self.restarts = 0

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap("PLAINTEXT")

    @property
    def running(self) -> bool:
        proc = self.broker.process
        return proc is not None and proc.alive()

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL): clients see refused connections from now on."""
        if self.broker.process is not None:
            self.broker.process.stop(grace=10.0)

    def start(self, timeout: float = 60.0) -> None:
        """Start it again on the same ports and data; returns once it serves metadata."""
        from confluent_kafka.admin import AdminClient

        self.restarts += 1
        config = self.workdir / "server.properties"
        proc = ManagedProcess(
            "kafka-restartable",
            java_command(self.libs, "kafka.Kafka", self.workdir, str(config)),
            self.workdir / f"kafka-restart-{self.restarts}.log",
        )
        self.broker.process = proc
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        began = time.monotonic()
        wait_for(lambda: bool(admin.list_topics(timeout=2).brokers), timeout=timeout, what="broker restart", proc=proc)
        self.last_start_seconds = time.monotonic() - began

    def close(self) -> None:
        self.broker.stop()
