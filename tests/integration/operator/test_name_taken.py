"""Two PipelineDeployments with one deploymentOwner/deploymentName: the first keeps the name, the second is
refused (Error, Degraded NameTaken, nothing of it runs) and takes the name, with the kept topics, once the first
is deleted. Without the rule, each forced apply takes the other's objects in turn and both pipelines consume the
same topics with the same consumer groups."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from algorun.operator import kinds
from algorun.operator.render.labels import OWNER_ANNOTATION
from tests.support.examples import example
from tests.support.kube import KubeAPI
from tests.support.operator_harness import Harness, running_operator
from tests.support.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _owners(objects: dict[str, dict[str, Any]]) -> set[str]:
    return {o["metadata"]["annotations"][OWNER_ANNOTATION] for o in objects.values()}


async def _all_owned_by(h: Harness, owner: str) -> bool:
    deployments = await h.owned(kinds.DEPLOYMENT)
    topics = await h.owned(kinds.KAFKA_TOPIC, h.kafka_namespace)
    return bool(deployments and topics) and _owners(deployments) == _owners(topics) == {owner}


async def test_a_second_deployment_of_one_name_is_refused_until_the_first_is_gone(kube: KubeAPI) -> None:
    async with running_operator(kube) as h:
        first, _ = example("text-transform", h.namespace)
        second = copy.deepcopy(first)
        second["metadata"]["name"] = "text-transform-again"
        await h.apply_pd(first)
        await eventually(lambda: _all_owned_by(h, f"{h.namespace}/text-transform"), "the first deployment's objects")
        await h.settle()

        await h.apply_pd(second)
        degraded = await eventually(
            lambda: _reason(h, "text-transform-again", "NameTaken"), "the second refused with NameTaken"
        )
        assert f"already deployed by PipelineDeployment {h.namespace}/text-transform" in degraded["message"]
        assert await h.status_of("text-transform-again") == "Error"
        await h.settle()
        assert await _all_owned_by(h, f"{h.namespace}/text-transform"), "the refused one took the first's objects"
        assert await h.status_of("text-transform") != "Error"

        await h.cluster.client.delete(
            kinds.resource(kinds.PIPELINE_DEPLOYMENT), "text-transform", namespace=h.namespace
        )
        await eventually(
            lambda: _all_owned_by(h, f"{h.namespace}/text-transform-again"),
            "the second to take the name and the kept topics once the first is deleted",
        )
        await eventually(lambda: _reason(h, "text-transform-again", "AsExpected"), "the second no longer degraded")


async def _reason(h: Harness, name: str, reason: str) -> dict[str, Any] | None:
    condition = await h.condition(name, "Degraded")
    return condition if condition and condition.get("reason") == reason else None
