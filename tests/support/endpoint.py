"""Helpers of the endpoint tests: configs, an in-process endpoint, and reading topics back from Kafka."""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import grpc

from algorun.api.configs import EndpointConfig, EndpointPathConfig, Identity
from algorun.api.enums import MessageDataType, WalMode
from algorun.api.pipeline import CircuitBreaker, Producer, WriteAheadLog
from algorun.bus import KafkaSettings, open_bus
from algorun.bus.types import Message, TopicSpec
from algorun.endpoint.claimcheck import PayloadStore
from algorun.endpoint.ingest import Outgoing
from algorun.endpoint.pb import pipeline_endpoint_pb2 as pb
from algorun.endpoint.service import EndpointService, endpoint_kafka_settings
from algorun.endpoint.settings import build_settings
from tests.support.procs import ManagedProcess

OWNER, NAME = "acme", "orders"
JSON = {"Content-Type": "application/json"}
"""Request headers of a JSON body."""


def make_config(
    topic: str,
    *,
    wal_mode: WalMode = WalMode.DISABLE,
    wal_dir: Path | None = None,
    content_type: str | None = "application/json",
    data_type: MessageDataType = MessageDataType.EMBEDDED,
    partitions: int = 1,
    cb_fails: int = 1,
    cb_timeout: str = "1s",
) -> EndpointConfig:
    return EndpointConfig(
        identity=Identity(deployment_owner=OWNER, deployment_name=NAME, pipeline_owner=OWNER, pipeline_name=NAME),
        paths=[
            EndpointPathConfig(
                name="in", topic=topic, partitions=partitions, content_type=content_type, message_data_type=data_type
            )
        ],
        producer=Producer(
            cb=CircuitBreaker(fails=cb_fails, timeout=cb_timeout),
            wal=WriteAheadLog(mode=wal_mode, path=str(wal_dir) if wal_dir else None),
        ),
    )


def kafka_settings(bootstrap: str) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=bootstrap, client_config_overrides={"log_level": 0})


async def create_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    bus = open_bus(kafka_settings(bootstrap))
    try:
        await bus.create_topics([TopicSpec(topic, partitions, 1)])
    finally:
        await bus.close()


@asynccontextmanager
async def running_endpoint(
    config: EndpointConfig,
    kafka: str | KafkaSettings,
    env: dict[str, str] | None = None,
    store: PayloadStore | None = None,
) -> AsyncIterator[EndpointService]:
    """An endpoint on free ports of 127.0.0.1, in this event loop; `kafka` is a PLAINTEXT bootstrap address, or the
    settings of another listener."""
    settings = build_settings(
        config,
        {"ALGORUN_ENDPOINT_ACK_TIMEOUT": "2", **(env or {})},
        http_listen="127.0.0.1:0",
        grpc_listen="127.0.0.1:0",
        monitoring_listen="127.0.0.1:0",
    )
    bus = open_bus(endpoint_kafka_settings(kafka_settings(kafka) if isinstance(kafka, str) else kafka, settings))
    async with _serving(EndpointService(config, settings, bus, store=store)) as service:
        yield service


@asynccontextmanager
async def local_endpoint(directory: Path, topic: str, env: dict[str, str]) -> AsyncIterator[EndpointService]:
    """An endpoint of one path into `topic`, on free ports of 127.0.0.1, over an embedded local log in
    `directory` (no broker): for tests of its front door (TLS, credentials), not of Kafka."""
    config = make_config(topic)
    settings = build_settings(
        config, env, http_listen="127.0.0.1:0", grpc_listen="127.0.0.1:0", monitoring_listen="127.0.0.1:0"
    )
    bus = open_bus(f"local://{directory}/log.db")
    await bus.create_topics([TopicSpec(topic)])
    async with _serving(EndpointService(config, settings, bus, durable_bus=True)) as service:
        yield service


@asynccontextmanager
async def _serving(service: EndpointService) -> AsyncIterator[EndpointService]:
    """Start `service`; stop it and close its bus at the end."""
    await service.start()
    try:
        yield service
    finally:
        await service.stop()
        await service.bus.close()


async def read_topic(bootstrap: str, topic: str, expected: int, limit: float = 30.0) -> list[Message]:
    """Every message of `topic` (no group), waiting until at least `expected` arrived or `limit` seconds passed."""
    bus = open_bus(kafka_settings(bootstrap))
    consumer = bus.consumer(None, [topic])
    out: list[Message] = []
    deadline = time.monotonic() + limit
    try:
        while len(out) < expected and time.monotonic() < deadline:
            out.extend(await consumer.getmany(1000, 0.5))
        # Anything beyond `expected` (duplicates) that is already there.
        out.extend(await consumer.getmany(1000, 0.2))
    finally:
        await consumer.close()
        await bus.close()
    return sorted(out, key=lambda m: (m.partition, m.offset))


async def stored_keys(bootstrap: str, topic: str, expected: int, limit: float = 30.0) -> list[str]:
    """The keys (traceIDs) of what `topic` holds, in partition and offset order: what the endpoint stored."""
    return [m.key.decode() for m in await read_topic(bootstrap, topic, expected, limit) if m.key]


def header(msg: Message, name: str) -> str | None:
    value = msg.header(name)
    return value.decode() if value is not None else None


def endpoint_process(config_file: Path, bootstrap: str, port: int, mon: int, log: Path) -> ManagedProcess:
    """`algorun endpoint` in its own process (the deployed form: signals, exit, restart), on `port` and `mon`."""
    argv = [
        sys.executable,
        "-m",
        "algorun.cli.main",
        "endpoint",
        "--config",
        str(config_file),
        "--bus",
        f"kafka://{bootstrap}",
        "--http-listen",
        f"127.0.0.1:{port}",
        "--grpc-listen",
        "127.0.0.1:0",
        "--monitoring-listen",
        f"127.0.0.1:{mon}",
    ]
    return ManagedProcess("endpoint", argv, log, env={"ALGORUN_ENDPOINT_ACK_TIMEOUT": "2"})


async def healthy(http: aiohttp.ClientSession, port: int) -> bool:
    """The endpoint's /health answers 200 on `port`."""
    try:
        async with http.get(f"http://127.0.0.1:{port}/health") as resp:
            return resp.status == 200
    except aiohttp.ClientError:
        return False


async def acks_until_failure(call: Any) -> tuple[list[int], grpc.aio.AioRpcError]:
    """The stream offsets a gRPC `Run` stream acknowledged, in order, and the error it then ended with (fails the
    test if it ended without one)."""
    acks: list[int] = []
    try:
        async for answer in call:
            acks.append(answer.streamOffset)
    except grpc.aio.AioRpcError as e:
        return acks, e
    raise AssertionError(f"the stream ended without an error after acks {acks}")


def run_request(
    offset: int, path: str = "in", trace: str = "", body: bytes = b"{}", parameters: dict[str, str] | None = None
) -> pb.RunRequest:
    """One message of a gRPC stream to this module's endpoint (`OWNER`/`NAME`), JSON, at `offset`."""
    return pb.RunRequest(
        deploymentOwner=OWNER,
        deploymentName=NAME,
        endpointPath=path,
        traceID=trace,
        contentType="application/json",
        message=body,
        parameters=parameters or {},
        streamOffset=offset,
    )


def outgoing(i: int, topic: str = "t") -> Outgoing:
    """The `i`-th message of a test for `topic`, with key, value and trace id numbered by `i`."""
    return Outgoing(topic, f"k{i}".encode(), f"v{i}".encode(), [("traceID", f"k{i}".encode())], f"k{i}")
