"""The original sample on a real API server: create, converge, status, scale, drift, resync, delete."""

from __future__ import annotations

import pytest

from algorun.operator import kinds
from tests.support.examples import example
from tests.support.kube import KubeAPI
from tests.support.operator_harness import running_operator
from tests.support.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ALGO = "local-test-deployment-tests-test-text-transform-http-1"
ENDPOINT = "local-test-deployment-endpoint"


async def test_original_sample_lifecycle(kube: KubeAPI) -> None:
    async with running_operator(kube, kafka_tls=True, kafka_auth_type="tls") as h:
        pd, templates = example("original-sample", h.namespace)
        await h.cluster.client.apply(kinds.resource(kinds.ALGO)(templates[0]), field_manager="tests", force=True)
        # the CA secret Strimzi keeps in the Kafka namespace
        await h.cluster.create(
            kinds.SECRET,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "kafka-cluster-ca-cert", "namespace": h.kafka_namespace},
                "data": {"ca.crt": "Q0E="},
            },
        )
        await h.apply_pd(pd)
        name = pd["metadata"]["name"]

        deployment = await eventually(lambda: h.get(kinds.DEPLOYMENT, ALGO), "the algo Deployment")
        assert [c["name"] for c in deployment["spec"]["template"]["spec"]["containers"]] == [
            "algo-runner",
            "test-text-transform-http",
        ]
        assert deployment["metadata"]["ownerReferences"][0]["kind"] == "PipelineDeployment"
        assert await h.get(kinds.DEPLOYMENT, ENDPOINT)
        assert await h.get(kinds.CONFIG_MAP, f"{ALGO}-config")
        assert await h.get(kinds.SERVICE, f"{ALGO}-metrics")
        mappings = await h.owned(kinds.MAPPING)
        assert {m["spec"]["prefix"] for m in mappings.values()} == {
            "/run/http/local/test-deployment/",
            "/run/grpc/local/test-deployment/",
        }
        topics = await h.owned(kinds.KAFKA_TOPIC, h.kafka_namespace)
        topic = topics["algorun-local-test-deployment-endpoint-0-test-http"]
        assert topic["spec"] == {
            "topicName": "algorun.local.test-deployment.endpoint.0.test_http",
            "partitions": 3,
            "replicas": 1,
        }
        assert "ownerReferences" not in topic["metadata"]
        user = await h.get(kinds.KAFKA_USER, "kafka-local-test-deployment", h.kafka_namespace)
        assert user is not None and user["spec"]["authentication"]["type"] == "tls"
        ca_copy = await h.get(kinds.SECRET, "local-test-deployment-kafka-ca")
        assert ca_copy is not None and ca_copy["data"] == {"ca.crt": "Q0E="}

        # Progressing: nothing runs yet, and the user secret Strimzi would issue does not exist yet
        progressing = await eventually(lambda: h.condition(name, "Progressing"), "a Progressing condition")
        assert progressing["status"] == "True"
        assert "kafka-local-test-deployment" in progressing["message"]
        assert await h.status_of(name) == "Progressing"
        # Strimzi issues the user secret: the operator copies it
        await h.cluster.create(
            kinds.SECRET,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "kafka-local-test-deployment", "namespace": h.kafka_namespace},
                "data": {"user.crt": "Q0VSVA==", "user.key": "S0VZ"},
            },
        )
        user_copy = await eventually(
            lambda: h.get(kinds.SECRET, "local-test-deployment-kafka-user"), "the user secret copy"
        )
        assert user_copy["data"] == {"user.crt": "Q0VSVA==", "user.key": "S0VZ"}

        # the workloads become ready: Deployed, Ready
        await h.mark_ready(kinds.DEPLOYMENT, ALGO)
        await h.mark_ready(kinds.DEPLOYMENT, ENDPOINT)

        async def deployed() -> bool:
            return await h.status_of(name) == "Deployed"

        await eventually(deployed, "status Deployed")
        ready = await h.condition(name, "Ready")
        assert ready is not None and ready["status"] == "True"
        degraded = await h.condition(name, "Degraded")
        assert degraded is not None and degraded["status"] == "False"
        stored = await h.pd(name)
        assert stored is not None and stored["status"]["observedGeneration"] == stored["metadata"]["generation"]
        components = {c["deploymentName"]: c for c in stored["status"]["componentStatuses"]}
        assert components[ALGO]["status"] == "Deployed" and components[ALGO]["componentType"] == "Algo"
        assert components[ALGO]["name"] == "tests/test-text-transform-http"

        # notifications: the status changes, with the deployment's identity
        await h.operator.reconciler.notifier.drain()
        statuses = [
            m["deploymentStatusMessage"]["status"] for m in h.notifications.of_type("/PipelineDeploymentStatuschanged")
        ]
        assert statuses[-1] == "Deployed" and "Progressing" in statuses
        assert h.notifications.of_type("/PipelineDeploymentchanged")

        # steady state: a resync writes nothing
        await h.settle()
        before_ours, before_server = h.cluster.write_count, h.api_writes()
        sent_before = len(h.notifications.received)
        result = await h.operator.reconciler.reconcile(h.namespace, name)
        assert result.outcome is not None and not result.outcome.changed
        assert h.cluster.write_count == before_ours, h.cluster.writes
        assert h.api_writes() == before_server
        await h.operator.reconciler.notifier.drain()
        assert len(h.notifications.received) == sent_before, "no notification without a change"

        # scale: the Deployment follows the spec, and the status goes back to Progressing
        pd["spec"]["algos"][0]["replicas"] = 3
        await h.apply_pd(pd)

        async def scaled() -> bool:
            obj = await h.get(kinds.DEPLOYMENT, ALGO)
            return bool(obj and obj["spec"]["replicas"] == 3)

        await eventually(scaled, "the algo Deployment scaled to 3")
        await eventually(lambda: _equals(h.status_of(name), "Progressing"), "status Progressing after scaling")

        # drift: a hand edit of a managed field is reverted
        await h.cluster.client.patch(
            kinds.resource(kinds.DEPLOYMENT),
            ALGO,
            {"spec": {"template": {"spec": {"containers": [{"name": "algo-runner", "image": "evil/image:1"}]}}}},
            namespace=h.namespace,
        )

        async def restored() -> bool:
            obj = await h.get(kinds.DEPLOYMENT, ALGO)
            images = [c["image"] for c in (obj or {})["spec"]["template"]["spec"]["containers"]]
            return "evil/image:1" not in images

        await eventually(restored, "the hand-edited image reverted")

        # delete: owned and cross-namespace objects go, topics stay (no opt-in)
        await h.cluster.client.delete(kinds.resource(kinds.PIPELINE_DEPLOYMENT), name, namespace=h.namespace)

        async def gone() -> bool:
            return await h.pd(name) is None

        await eventually(gone, "the PipelineDeployment to be deleted")
        assert await h.get(kinds.DEPLOYMENT, ALGO) is None
        assert await h.get(kinds.SECRET, "local-test-deployment-kafka-ca") is None
        assert not await h.owned(kinds.MAPPING)
        assert await h.get(kinds.KAFKA_USER, "kafka-local-test-deployment", h.kafka_namespace) is None
        assert len(await h.owned(kinds.KAFKA_TOPIC, h.kafka_namespace)) == len(topics)
        await h.operator.reconciler.notifier.drain()
        deleted = h.notifications.of_type("/PipelineDeploymentDeletedchanged")
        assert deleted and deleted[-1]["deploymentStatusMessage"]["deploymentName"] == "test-deployment"
        assert deleted[-1]["deploymentStatusMessage"]["deploymentOwner"] == "local"


async def _equals(value: object, expected: object) -> bool:
    return await value == expected  # type: ignore[misc]


async def test_liveness_and_metrics_endpoints(kube: KubeAPI) -> None:
    """The chart probes /healthz and scrapes /metrics: both answer while the operator runs."""
    import socket

    import aiohttp

    def free() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    health, metrics = free(), free()
    async with running_operator(
        kube, metrics_enabled=True, metrics_port=metrics, liveness_endpoint=f"http://127.0.0.1:{health}/healthz"
    ) as h:
        pd, templates = example("original-sample", h.namespace)
        for template in templates:
            await h.cluster.client.apply(kinds.resource(kinds.ALGO)(template), field_manager="tests", force=True)
        await h.apply_pd(pd)
        await eventually(lambda: h.status_of(pd["metadata"]["name"]), "a status")
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{health}/healthz") as response:
                assert response.status == 200
            async with session.get(f"http://127.0.0.1:{metrics}/metrics") as response:
                text = await response.text()
        assert 'algorun_operator_reconciles_total{result="ok"}' in text
        assert "algorun_operator_writes_total" in text and "algorun_operator_reconcile_duration_seconds" in text
