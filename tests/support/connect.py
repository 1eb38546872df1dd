"""A real Kafka Connect distributed worker from the same Kafka release as the broker.

It joins a group of its own (a unique group.id and unique internal topics per session), talks to the broker
through the PLAINTEXT listener, and serves the Connect REST API on a free port. The file connectors
(FileStreamSource/FileStreamSink) are on the classpath. Converters default to strings so tests see exactly the
bytes a connector moved.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.kafka import KafkaBroker, java_command
from tests.support.procs import ManagedProcess, free_port, wait_for


@dataclass
class KafkaConnect:
    """A running Connect worker and a small client for its REST API."""

    url: str
    group_id: str
    process: ManagedProcess
    start_seconds: float = 0.0

    def request(self, method: str, path: str, body: Any | None = None, timeout: float = 30.0) -> Any:
        """Call the REST API; return the decoded JSON (None for empty bodies). HTTP errors raise."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def create_connector(self, name: str, config: dict[str, str], timeout: float = 30.0) -> Any:
        """POST /connectors, retrying while the worker answers 409 (a rebalance is in progress) or 503."""

        def attempt() -> Any:
            try:
                return self.request("POST", "/connectors", {"name": name, "config": config})
            except urllib.error.HTTPError as exc:
                if exc.code in (409, 503):
                    return None
                detail = exc.read().decode(errors="replace")
                raise AssertionError(f"creating connector {name}: HTTP {exc.code}: {detail}") from exc

        return wait_for(attempt, timeout=timeout, what=f"connector {name} to be accepted", proc=self.process)

    def connector_plugins(self) -> list[str]:
        return [p["class"] for p in self.request("GET", "/connector-plugins")]

    def stop(self) -> None:
        self.process.stop(grace=15)


def _worker_properties(kafka: KafkaBroker, port: int, group_id: str, config: dict[str, str]) -> str:
    """The worker's properties: the test bed's defaults (string converters, unique internal topics, one
    replica), then `config` key by key, then the REST listener (always this worker's own port)."""
    props = {
        "bootstrap.servers": kafka.bootstrap("PLAINTEXT"),
        "group.id": group_id,
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.storage.StringConverter",
        "config.storage.topic": f"{group_id}-configs",
        "offset.storage.topic": f"{group_id}-offsets",
        "status.storage.topic": f"{group_id}-status",
        "config.storage.replication.factor": "1",
        "offset.storage.replication.factor": "1",
        "status.storage.replication.factor": "1",
        "offset.storage.partitions": "1",
        "status.storage.partitions": "1",
        "offset.flush.interval.ms": "1000",
        # The file connectors are on the classpath and ship ServiceLoader manifests: skip the slow scan.
        "plugin.discovery": "service_load",
        "scheduled.rebalance.max.delay.ms": "0",
        "task.shutdown.graceful.timeout.ms": "2000",
        **config,
        "listeners": f"http://127.0.0.1:{port}",
        "rest.advertised.host.name": "127.0.0.1",
        "rest.advertised.port": str(port),
    }
    return "".join(f"{k}={v}\n" for k, v in props.items())


def _rest_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/connectors", timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_connect(
    libs: Path, workdir: Path, kafka: KafkaBroker, *, config: dict[str, str] | None = None, timeout: float = 90.0
) -> KafkaConnect:
    """Start a distributed worker and return once its REST API lists connectors (the herder is up).

    `config` overrides the test bed's worker properties (e.g. a group.id and internal topics chosen by a
    KafkaConnect object); without it the worker has a group of its own."""
    started = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = dict(config or {})
    group_id = config.get("group.id") or f"algorun-testbed-connect-{uuid.uuid4().hex[:8]}"
    properties = workdir / "worker.properties"
    properties.write_text(_worker_properties(kafka, port, group_id, config))
    proc = ManagedProcess(
        "kafka-connect",
        java_command(libs, "org.apache.kafka.connect.cli.ConnectDistributed", workdir, str(properties)),
        workdir / "connect.log",
    )
    connect = KafkaConnect(url=f"http://127.0.0.1:{port}", group_id=group_id, process=proc)
    try:
        wait_for(lambda: _rest_ready(connect.url), timeout=timeout, what="Connect REST API", proc=proc)
    except BaseException:
        proc.stop()
        raise
    connect.start_seconds = time.monotonic() - started
    return connect
