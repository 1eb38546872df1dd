"""Session-scoped fixtures that start the real test-bed servers (see tests/support/README.md).

Each server starts at most once per session, lazily, the first time a test asks for it, and is stopped at
session end (also on failures and Ctrl-C; tests.support.procs makes sure nothing outlives pytest).

A part that is not built yet is built on demand (same code as `make testbin`). When it cannot be:
- with CI=true the test fails, showing why and the tail of the build log;
- otherwise the test is skipped, and the reason names the missing toolchain.
A server that is built but fails to start always fails the test, with the tail of its log.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.support import testbin
from tests.support.connect import KafkaConnect, start_connect
from tests.support.helm import Helm
from tests.support.kafka import KafkaBroker, start_kafka
from tests.support.kube import CrdInstallError, KubeAPI, load_yaml_documents, start_kube
from tests.support.procs import StartError
from tests.support.s3 import S3Server, moto_available, start_s3

T = TypeVar("T")

# Start times of the servers this session, shown in the terminal summary.
_TIMINGS: dict[str, float] = {}


def _unavailable(reason: str) -> None:
    """Fail under CI, skip elsewhere: CI must never silently skip a part of the test bed."""
    if testbin.in_ci():
        pytest.fail(f"test bed part unavailable (CI=true, so this fails): {reason}", pytrace=False)
    pytest.skip(reason)


def require(part: str) -> Path:
    """The path of a built test-bed part, building it first if needed; skip or fail if impossible."""
    problem = ""
    try:
        path, seconds = testbin.ensure(part)
    except testbin.MissingToolchain as exc:
        problem = f"{part} needs a toolchain that is missing: {exc}"
    except testbin.BuildError as exc:
        problem = f"building {part} failed: {exc}"
    if problem:  # outside the except blocks, so the report is not cluttered with the exception chain
        _unavailable(problem)
    if seconds is not None:
        _TIMINGS[f"build {part}"] = seconds
    return path


def _start(name: str, start: Callable[[], T]) -> T:
    """Run a server's start function; a StartError fails the test with the server's log tail."""
    began = time.monotonic()
    try:
        server = start()
    except StartError as exc:
        problem = f"{name} did not start: {exc}"
    else:
        _TIMINGS[f"start {name}"] = time.monotonic() - began
        return server
    pytest.fail(problem, pytrace=False)


def _install_crds(kube: KubeAPI, what: str, crds: Callable[[], list[dict[str, Any]]]) -> None:
    """Install CRDs; a rejection fails the test with the API server's message."""
    began = time.monotonic()
    try:
        kube.install_crds(crds())
    except (CrdInstallError, StartError) as exc:
        problem = f"installing {what} failed: {exc}"
    else:
        _TIMINGS[f"install {what}"] = time.monotonic() - began
        return
    pytest.fail(problem, pytrace=False)


@pytest.fixture(scope="session")
def testbed_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Per-session working directory for server data, configs, certificates and logs."""
    return tmp_path_factory.mktemp("testbed")


@pytest.fixture(scope="session")
def kafka(testbed_dir: Path) -> Iterator[KafkaBroker]:
    """One KRaft broker with PLAINTEXT, SSL (mTLS), SASL_SSL (SCRAM-SHA-512) and SASL_PLAINTEXT (PLAIN).

    Use `kafka.client_config(listener)` for a confluent-kafka config and `kafka.unique_topic()` for names.
    """
    libs = require("kafka")
    broker = _start("kafka", lambda: start_kafka(libs, testbed_dir / "kafka"))
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_connect(kafka: KafkaBroker, testbed_dir: Path) -> Iterator[KafkaConnect]:
    """A distributed Kafka Connect worker (file connectors available) bound to the `kafka` broker."""
    libs = require("kafka")
    connect = _start("kafka-connect", lambda: start_connect(libs, testbed_dir / "connect", kafka))
    try:
        yield connect
    finally:
        connect.stop()


def third_party_crd_files() -> list[Path]:
    """The hand-written CRDs in testbin/crds plus the upstream ones fetched by the `crds` part."""
    upstream = require("crds")
    return sorted((testbin.INPUTS / "crds").glob("*.yaml")) + sorted(upstream.glob("*.yaml"))


@pytest.fixture(scope="session")
def kube_server(testbed_dir: Path) -> Iterator[KubeAPI]:
    """etcd + kube-apiserver (RBAC on, admin client in system:masters) with the third-party CRDs installed:
    Strimzi KafkaTopic/KafkaUser/KafkaConnect/KafkaConnector, Emissary Mapping, ServiceMonitor, Gateway API.
    """
    etcd = require("etcd")
    apiserver = require("kube-apiserver")
    crd_files = third_party_crd_files()
    kube = _start("kube-apiserver", lambda: start_kube(etcd, apiserver, testbed_dir / "kube"))
    try:
        _install_crds(kube, "third-party CRDs", lambda: load_yaml_documents(crd_files))
        yield kube
    finally:
        kube.stop()


@pytest.fixture(scope="session")
def kube(kube_server: KubeAPI) -> KubeAPI:
    """`kube_server` plus the algo.run CRDs from algorun.api.crds.generate_crds().

    Attributes: `server` (URL), `kubeconfig` (path), `client()`/`async_client()` (lightkube, as admin),
    `request()` (raw JSON), `create_namespace()`.
    """
    from algorun.api.crds import generate_crds

    _install_crds(kube_server, "algo.run CRDs", generate_crds)
    return kube_server


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """The helm 3 CLI with an isolated HELM_*_HOME; `helm.run(...)` runs it."""
    binary = require("helm")
    return Helm(binary=binary, home=tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="session")
def s3(testbed_dir: Path) -> Iterator[S3Server]:
    """An S3-compatible endpoint (moto server mode); see tests.support.s3 for what it does not emulate."""
    missing = moto_available()
    if missing:
        _unavailable(missing)
    server = _start("s3", lambda: start_s3(testbed_dir / "s3"))
    try:
        yield server
    finally:
        server.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Show how long each test-bed part took to build and start, when any was used."""
    if not _TIMINGS:
        return
    terminalreporter.section("test bed")
    for what, seconds in _TIMINGS.items():
        terminalreporter.write_line(f"{what:32} {seconds:7.2f}s")
