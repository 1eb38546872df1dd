"""The operator follows what the cluster serves of Strimzi, between reconciles and without a restart: with no
Strimzi CRD served it says so in the status and an Event and changes nothing; when the CRDs appear, or stop
serving v1 (an older 0.x), the next reconcile writes the version now served.

These tests change the Strimzi CRDs of `kube_strimzi0` (a server only the 0.x variants use) and put the
generated 0.51 CRDs back afterwards."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from algorun.operator import kinds
from algorun.operator.apis import STRIMZI_MISSING
from tests.support import strimzi_crds
from tests.support.examples import example
from tests.support.kube import KubeAPI, load_yaml_documents
from tests.support.operator_harness import Harness, running_operator
from tests.support.testbed_fixtures import strimzi_crd_files
from tests.support.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


@pytest.fixture
def strimzi0(kube_strimzi0: KubeAPI) -> Iterator[tuple[KubeAPI, list[dict[str, Any]]]]:
    """The 0.x server and its generated Strimzi CRDs, which are installed again after the test."""
    crds = load_yaml_documents(strimzi_crd_files(strimzi_crds.LAST_0X))
    try:
        yield kube_strimzi0, crds
    finally:
        kube_strimzi0.install_crds(copy.deepcopy(crds))


def _remove_crds(kube: KubeAPI, crds: list[dict[str, Any]]) -> None:
    for crd in crds:
        status, body = kube.request("DELETE", f"{CRD_PATH}/{crd['metadata']['name']}")
        assert status in (200, 202, 404), body


async def _crds_gone(kube: KubeAPI, crds: list[dict[str, Any]]) -> bool:
    return all(kube.request("GET", f"{CRD_PATH}/{c['metadata']['name']}")[0] == 404 for c in crds)


async def _events(h: Harness, reason: str) -> list[dict[str, Any]]:
    return [e for e in await h.cluster.list(kinds.EVENT, h.namespace) if e.get("reason") == reason]


async def test_no_strimzi_is_reported_then_followed_when_installed(
    strimzi0: tuple[KubeAPI, list[dict[str, Any]]],
) -> None:
    kube, crds = strimzi0
    _remove_crds(kube, crds)
    await eventually(lambda: _crds_gone(kube, crds), "the Strimzi CRDs to be deleted", limit=60)
    async with running_operator(kube) as h:
        pd, _ = example("data-connector", h.namespace)
        name = pd["metadata"]["name"]
        await h.apply_pd(pd)

        async def strimzi_missing() -> dict[str, Any] | None:
            degraded = await h.condition(name, "Degraded")
            return degraded if degraded and degraded["status"] == "True" else None

        degraded = await eventually(strimzi_missing, "the Degraded condition")
        assert STRIMZI_MISSING in degraded["message"] and degraded["reason"] == "StrimziMissing", degraded
        events = await eventually(lambda: _events(h, "StrimziMissing"), "the StrimziMissing Event")
        assert [(e["type"], e["message"]) for e in events] == [("Warning", STRIMZI_MISSING)]
        assert await h.owned(kinds.DEPLOYMENT) == {}, "nothing is created without Strimzi"

        kube.install_crds(copy.deepcopy(crds))  # Strimzi installed while the operator runs
        clean = "algorun-ops-file-copy-normalise-1-clean"
        topic = await eventually(lambda: h.get(kinds.KAFKA_TOPIC, clean, h.kafka_namespace), clean, limit=60)
        assert topic["spec"]["topicName"] == "algorun.ops.file-copy.normalise.1.clean"
        assert await eventually(lambda: _events(h, "Recovered"), "the Recovered Event")
        assert (await h.operator.reconciler.discovery.served()).strimzi_version == "v1"


def _v1_unserved(crds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The 0.51 CRDs as an older 0.x serves them: v1beta2 (and older), not v1."""
    changed = copy.deepcopy(crds)
    for crd in changed:
        for version in crd["spec"]["versions"]:
            if version["name"] == "v1":
                version["served"] = False
    return changed


async def _connect_spec(h: Harness) -> dict[str, Any] | None:
    connect = (await h.owned(kinds.KAFKA_CONNECT)).get("ops-file-copy-file-sink-1")
    return connect["spec"] if connect else None


async def test_switching_the_served_version_between_reconciles(strimzi0: tuple[KubeAPI, list[dict[str, Any]]]) -> None:
    kube, crds = strimzi0
    async with running_operator(kube) as h:
        pd, _ = example("data-connector", h.namespace)
        await h.apply_pd(pd)
        spec = await eventually(lambda: _connect_spec(h), "the KafkaConnect")
        assert spec["groupId"] == "algorun-ops-file-copy-file-sink-1-connect", "v1 is served: the v1 form"
        reads = h.operator.reconciler.discovery.reads

        kube.install_crds(_v1_unserved(crds))  # as if downgraded to a 0.x that serves only v1beta2

        async def v1beta2_form() -> dict[str, Any] | None:
            spec = await h.cluster.get(
                kinds.strimzi(kinds.KAFKA_CONNECT, "v1beta2"), "ops-file-copy-file-sink-1", h.namespace
            )
            config = ((spec or {}).get("spec") or {}).get("config") or {}
            return config if config.get("group.id") else None

        config = await eventually(v1beta2_form, "the KafkaConnect rewritten in the v1beta2 form", limit=60)
        assert config["group.id"] == "algorun-ops-file-copy-file-sink-1-connect"
        assert h.operator.reconciler.discovery.reads > reads, "discovery was read again, without a restart"

        kube.install_crds(copy.deepcopy(crds))  # v1 served again
        spec = await eventually(
            lambda: _connect_spec_with_group_id(h), "the KafkaConnect back in the v1 form", limit=60
        )
        assert "group.id" not in spec["config"]


async def _connect_spec_with_group_id(h: Harness) -> dict[str, Any] | None:
    spec = await _connect_spec(h)
    return spec if spec and spec.get("groupId") else None
