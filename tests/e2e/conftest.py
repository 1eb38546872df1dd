"""The e2e tests' cluster and what surrounds it, started once for the tests/e2e package and removed after it.

- `cluster`: the single-node cluster (tests.support.cluster) with algorun's images loaded;
- `cluster_kafka`: a test-bed broker listening on the address pods reach the host at, named in the cluster as
  the examples name it (`kafka-kafka-bootstrap.kafka:9093`, resolved by the cluster's DNS);
- `strimzi`: Strimzi's stand-in (tests.support.strimzi) creating the topics, users and Connect clusters of the
  objects the operator writes;
- `operator`: the chart installed with helm (`helm install --wait`: the operator pod is Ready);
- `receiver`: the examples' webhook receiver, listening where the hook runner's pods reach it.

Package-scoped: the cluster's pods do not keep running (and taking the cores) while the rest of the suite runs.
A part that cannot be built fails under CI=true and skips elsewhere, as in tests/integration.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.support import cluster as cluster_support
from tests.support.chart_install import install_operator
from tests.support.cluster import Cluster
from tests.support.e2e import Operator, Receiver, name_broker, webhook_receiver
from tests.support.helm import Helm
from tests.support.kafka import KafkaBroker, start_kafka
from tests.support.strimzi import StrimziStandIn
from tests.support.testbed_fixtures import FIGURES, TIMINGS, require, start_server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.path):
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.timeout(900))


@pytest.fixture(scope="package")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    for part in (*cluster_support.PARTS, "helm", "kafka", "crds", "strimzi-crds"):
        require(part)
    workdir = tmp_path_factory.mktemp("cluster")
    running = start_server("single-node cluster", lambda: cluster_support.start(workdir))
    for what, seconds in running.timings.items():
        TIMINGS[f"cluster: {what}"] = seconds
    try:
        yield running
    finally:
        FIGURES.update({f"at the end of e2e: {k}": v for k, v in running.usage().items()})
        running.stop()


@pytest.fixture(scope="package")
def cluster_kafka(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    libs = require("kafka")
    workdir = tmp_path_factory.mktemp("cluster-kafka")
    broker = start_server("kafka for the cluster", lambda: start_kafka(libs, workdir, host=cluster.host_address))
    name_broker(cluster, broker)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="package")
def strimzi(
    cluster: Cluster, cluster_kafka: KafkaBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StrimziStandIn]:
    workdir = tmp_path_factory.mktemp("strimzi-connect")
    standin = StrimziStandIn(cluster.api, cluster_kafka, kafka_libs=require("kafka"), workdir=workdir).start()
    try:
        yield standin
    finally:
        standin.stop()


@pytest.fixture(scope="package")
def cluster_helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(binary=require("helm"), home=tmp_path_factory.mktemp("cluster-helm"))


@pytest.fixture(scope="package")
def operator(
    cluster: Cluster,
    cluster_kafka: KafkaBroker,
    strimzi: StrimziStandIn,
    cluster_helm: Helm,
    tmp_path_factory: pytest.TempPathFactory,
) -> Operator:
    began = time.monotonic()
    values = install_operator(cluster.api, cluster_helm, tmp_path_factory.mktemp("chart"))
    TIMINGS["helm install (operator Ready)"] = time.monotonic() - began
    return Operator(cluster=cluster, kafka=cluster_kafka, values=values)


@pytest.fixture(scope="package")
def receiver(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    with webhook_receiver(tmp_path_factory.mktemp("receiver"), cluster.host_address) as running:
        yield running
