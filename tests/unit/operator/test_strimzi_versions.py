"""Strimzi in the version the cluster serves: v1 (1.x) or v1beta2 (0.x), each kind in its version's form;
`--api-versions`; what discovery reads from the CRDs, and when it reads again."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from algorun.cli.main import app
from algorun.operator import kinds
from algorun.operator.apis import CURRENT, STRIMZI_MISSING, ServedApis, assumed
from algorun.operator.discovery import Discovery, strimzi_apis
from algorun.operator.render import ClusterFacts
from tests.support.operator_render import find, rendered
from tests.support.paths import EXAMPLES

STRIMZI_KINDS = {"KafkaTopic", "KafkaUser", "KafkaConnect", "KafkaConnector"}
V1_CONNECT_FIELDS = ("groupId", "offsetStorageTopic", "configStorageTopic", "statusStorageTopic")
FORBIDDEN_IN_V1_CONFIG = ("group.id", "offset.storage.topic", "config.storage.topic", "status.storage.topic")


@pytest.mark.parametrize("version", ["v1", "v1beta2"])
def test_every_strimzi_object_is_written_in_the_served_version(version: str) -> None:
    objects = rendered("data-connector", ClusterFacts(offline=True, strimzi_version=version)).objects
    strimzi = [o for o in objects if o["apiVersion"].startswith("kafka.strimzi.io/")]
    assert {o["kind"] for o in strimzi} == STRIMZI_KINDS
    assert {o["apiVersion"] for o in strimzi} == {f"kafka.strimzi.io/{version}"}


def test_v1_kafka_connect_has_its_required_fields_and_none_of_them_in_config() -> None:
    objects = rendered("data-connector", ClusterFacts(offline=True, strimzi_version="v1")).objects
    for connect in find(objects, "KafkaConnect"):
        spec = connect["spec"]
        name = connect["metadata"]["name"]
        assert all(spec.get(f) for f in (*V1_CONNECT_FIELDS, "replicas", "bootstrapServers")), spec
        assert spec["groupId"] == f"algorun-{name}-connect"
        assert spec["offsetStorageTopic"] == f"algorun-{name}-connect-offsets"
        assert not [k for k in spec["config"] if k.startswith(FORBIDDEN_IN_V1_CONFIG)], spec["config"]


def test_v1beta2_kafka_connect_keeps_them_in_config_for_every_0x_release() -> None:
    objects = rendered("data-connector", ClusterFacts(offline=True, strimzi_version="v1beta2")).objects
    for connect in find(objects, "KafkaConnect"):
        spec = connect["spec"]
        assert not [f for f in V1_CONNECT_FIELDS if f in spec]
        assert spec["config"]["group.id"] == f"algorun-{connect['metadata']['name']}-connect"
        assert spec["config"]["status.storage.topic"].endswith("-connect-status")


def test_other_kinds_are_the_same_in_both_versions() -> None:
    def specs(version: str) -> dict[tuple[str, str], Any]:
        objects = rendered("data-connector", ClusterFacts(offline=True, strimzi_version=version)).objects
        return {(o["kind"], o["metadata"]["name"]): o.get("spec") for o in objects if o["kind"] != "KafkaConnect"}

    assert specs("v1") == specs("v1beta2")


def test_api_versions_name_what_the_cluster_serves() -> None:
    assert CURRENT.strimzi_version == "v1"
    assert assumed([]).strimzi_version == "v1", "without flags: a current Strimzi"
    assert assumed(["kafka.strimzi.io/v1beta2"]).strimzi_version == "v1beta2"
    assert assumed(["kafka.strimzi.io/v1beta2", "kafka.strimzi.io/v1"]).strimzi_version == "v1"
    assert assumed(["gateway.networking.k8s.io/v1"]).strimzi_version == "v1", "other groups keep the default"
    assert assumed(["kafka.strimzi.io/v1beta1"]).strimzi_version is None
    for bad in ("kafka.strimzi.io", "Kafka.strimzi.io/v1", "kafka.strimzi.io/v1/x", ""):
        with pytest.raises(ValueError, match="is not GROUP/VERSION"):
            assumed([bad])


def _render(*args: str) -> Any:
    return CliRunner().invoke(app, ["render", str(EXAMPLES / "data-connector" / "pipeline.yaml"), *args])


def test_render_command_writes_the_version_api_versions_asks_for() -> None:
    for args, version in (((), "v1"), (("--api-versions", "kafka.strimzi.io/v1beta2"), "v1beta2")):
        result = _render(*args)
        assert result.exit_code == 0, result.output
        documents = list(yaml.safe_load_all(result.stdout))
        versions = {d["apiVersion"] for d in documents if d["kind"] in STRIMZI_KINDS}
        assert versions == {f"kafka.strimzi.io/{version}"}


def test_render_command_without_a_strimzi_version_it_can_write_says_so() -> None:
    result = _render("--api-versions", "kafka.strimzi.io/v1beta1")
    assert result.exit_code == 1
    assert "the cluster serves no Strimzi API (kafka.strimzi.io v1 or v1beta2)" in " ".join(result.output.split())
    bad = _render("--api-versions", "strimzi")
    assert bad.exit_code == 2 and "is not GROUP/VERSION" in " ".join(bad.output.split())


def _crd(plural: str, versions: dict[str, bool]) -> dict[str, Any]:
    return {
        "metadata": {"name": f"{plural}.kafka.strimzi.io"},
        "spec": {"versions": [{"name": n, "served": s} for n, s in versions.items()]},
    }


def test_served_versions_are_those_every_strimzi_crd_serves() -> None:
    strimzi_051 = {"v1": True, "v1beta2": True, "v1beta1": True}
    assert strimzi_apis([_crd("kafkatopics", strimzi_051)]).strimzi_version == "v1"
    assert strimzi_apis([_crd("kafkatopics", {"v1": True})]).strimzi_version == "v1"
    old = [_crd("kafkatopics", {"v1beta2": True, "v1": False}), _crd("kafkausers", strimzi_051)]
    assert strimzi_apis(old).strimzi_version == "v1beta2", "v1 is not served by every kind"
    assert strimzi_apis([]) == ServedApis(frozenset())
    assert strimzi_apis([]).strimzi_version is None
    assert "install Strimzi" in STRIMZI_MISSING


class FakeCluster:
    """Serves CRD lists from a dict that a test changes, counting the requests."""

    def __init__(self, crds: dict[str, dict[str, Any]]) -> None:
        self.crds = crds
        self.requests = 0

    async def list(
        self, kind: kinds.Kind, namespace: str | None, labels: Any = None, fields: Any = None
    ) -> list[dict[str, Any]]:
        assert kind == kinds.CRD and namespace is None
        self.requests += 1
        name = (fields or {})["metadata.name"]
        return [self.crds[name]] if name in self.crds else []


def test_discovery_reads_once_until_invalidated() -> None:
    cluster = FakeCluster({"kafkatopics.kafka.strimzi.io": _crd("kafkatopics", {"v1beta2": True})})
    discovery = Discovery(cluster)  # type: ignore[arg-type]

    async def scenario() -> None:
        assert (await discovery.served()).strimzi_version == "v1beta2"
        requests = cluster.requests
        assert requests == len(kinds.STRIMZI_KINDS)
        assert (await discovery.served()).strimzi_version == "v1beta2"
        assert cluster.requests == requests, "cached: no request for an unchanged cluster"
        cluster.crds["kafkatopics.kafka.strimzi.io"] = _crd("kafkatopics", {"v1": True})  # Strimzi upgraded
        discovery.invalidate()
        assert (await discovery.served()).strimzi_version == "v1"
        cluster.crds.clear()  # Strimzi removed
        discovery.invalidate()
        assert (await discovery.served()).strimzi_version is None

    asyncio.run(scenario())


def test_managed_kinds_follow_the_strimzi_version() -> None:
    v1beta2 = {k.api_version for k in kinds.managed("v1beta2") if k.kind in STRIMZI_KINDS}
    assert v1beta2 == {"kafka.strimzi.io/v1beta2"}
    assert {k.kind for k in kinds.managed(None)} & STRIMZI_KINDS == set()
    assert kinds.of({"apiVersion": "kafka.strimzi.io/v1beta2", "kind": "KafkaTopic"}).version == "v1beta2"
    assert kinds.of({"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaTopic"}) == kinds.KAFKA_TOPIC
