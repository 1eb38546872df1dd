"""Acceptance tests proving the Kubernetes part of the test bed is a real API server with our CRDs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.kube import KubeAPI, load_yaml_documents

pytestmark = pytest.mark.integration


def _pipeline_deployment(name: str, algos: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "algo.run/v1beta1",
        "kind": "PipelineDeployment",
        "metadata": {"name": name},
        "spec": {
            "deploymentOwner": "tests",
            "deploymentName": "testbed",
            "pipelineOwner": "tests",
            "pipelineName": "p",
            "pipelineVersionTag": "1",
            "kafkaBrokers": "kafka:9092",
            "algos": algos or [],
            "pipes": [],
        },
    }


def _algo(executor: str) -> dict[str, Any]:
    return {
        "version": "1",
        "index": 1,
        "spec": {
            "owner": "o",
            "name": "n",
            "versions": [{"versionTag": "1", "image": {"repository": "r", "tag": "t"}}],
            "executor": executor,
        },
    }


def test_crds_from_algorun_crds_install(kube_server: KubeAPI, tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "algorun.cli.main", "crds", "--output-dir", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    crds = load_yaml_documents(sorted(tmp_path.glob("*.y*ml")))
    assert {c["metadata"]["name"] for c in crds} >= {
        "algos.algo.run",
        "dataconnectors.algo.run",
        "pipelinedeployments.algo.run",
    }

    installed = kube_server.install_crds(crds)

    for name in installed:
        status, crd = kube_server.request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
        assert status == 200
        assert any(c["type"] == "Established" and c["status"] == "True" for c in crd["status"]["conditions"])


def test_valid_pipeline_deployment_is_accepted(kube: KubeAPI) -> None:
    ns = kube.create_namespace("pd")

    status, body = kube.request(
        "POST", f"/apis/algo.run/v1beta1/namespaces/{ns}/pipelinedeployments", _pipeline_deployment("ok")
    )

    assert status == 201, body
    status, body = kube.request("GET", f"/apis/algo.run/v1beta1/namespaces/{ns}/pipelinedeployments/ok")
    assert status == 200
    assert body["spec"]["pipelineName"] == "p"


def test_invalid_enum_is_rejected_by_the_server(kube: KubeAPI) -> None:
    ns = kube.create_namespace("pd")
    bad = _pipeline_deployment("bad", algos=[_algo("Bogus")])

    status, body = kube.request("POST", f"/apis/algo.run/v1beta1/namespaces/{ns}/pipelinedeployments", bad)

    assert status == 422, body
    assert body["reason"] == "Invalid"
    assert 'Unsupported value: "Bogus"' in body["message"]
    assert "executor" in body["message"]


def test_third_party_kinds_are_served(kube_server: KubeAPI) -> None:
    ns = kube_server.create_namespace("third-party")
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "kafka.strimzi.io/v1",
            "kind": "KafkaTopic",
            "metadata": {"name": "t", "labels": {"strimzi.io/cluster": "c"}},
            "spec": {"partitions": 3, "replicas": 1, "config": {"retention.ms": 60000}},
        },
        {
            "apiVersion": "kafka.strimzi.io/v1",
            "kind": "KafkaUser",
            "metadata": {"name": "u", "labels": {"strimzi.io/cluster": "c"}},
            "spec": {
                "authentication": {"type": "scram-sha-512"},
                "authorization": {
                    "type": "simple",
                    "acls": [
                        {
                            "resource": {"type": "topic", "name": "t", "patternType": "literal"},
                            "operations": ["Read", "Write", "Describe"],
                        }
                    ],
                },
            },
        },
        {
            "apiVersion": "kafka.strimzi.io/v1",
            "kind": "KafkaConnect",
            "metadata": {"name": "kc", "annotations": {"strimzi.io/use-connector-resources": "true"}},
            "spec": {
                "replicas": 1,
                "bootstrapServers": "kafka:9093",
                "groupId": "kc",
                "configStorageTopic": "kc-configs",
                "offsetStorageTopic": "kc-offsets",
                "statusStorageTopic": "kc-status",
            },
        },
        {
            "apiVersion": "kafka.strimzi.io/v1",
            "kind": "KafkaConnector",
            "metadata": {"name": "kctr", "labels": {"strimzi.io/cluster": "kc"}},
            "spec": {"class": "FileStreamSource", "tasksMax": 1, "config": {"topic": "t"}},
        },
        {
            "apiVersion": "getambassador.io/v3alpha1",
            "kind": "Mapping",
            "metadata": {"name": "m"},
            "spec": {"hostname": "*", "prefix": "/algo/", "service": "algo:8080", "timeout_ms": 30000},
        },
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            "metadata": {"name": "sm"},
            "spec": {
                "selector": {"matchLabels": {"app": "algo"}},
                "endpoints": [{"port": "metrics", "interval": "15s"}],
            },
        },
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "r"},
            "spec": {
                "parentRefs": [{"name": "gw"}],
                "rules": [
                    {
                        "matches": [{"path": {"type": "PathPrefix", "value": "/algo"}}],
                        "backendRefs": [{"name": "algo", "port": 8080}],
                    }
                ],
            },
        },
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GRPCRoute",
            "metadata": {"name": "g"},
            "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [{"name": "algo", "port": 9090}]}]},
        },
    ]
    plurals = {
        "KafkaTopic": "kafkatopics",
        "KafkaUser": "kafkausers",
        "KafkaConnect": "kafkaconnects",
        "KafkaConnector": "kafkaconnectors",
        "Mapping": "mappings",
        "ServiceMonitor": "servicemonitors",
        "HTTPRoute": "httproutes",
        "GRPCRoute": "grpcroutes",
    }
    for obj in objects:
        path = f"/apis/{obj['apiVersion']}/namespaces/{ns}/{plurals[obj['kind']]}"
        status, body = kube_server.request("POST", path, obj)
        assert status == 201, (obj["kind"], body)

    # The schemas are enforced, not just stored: Strimzi's enum and minimum are checked by the server.
    bad_topic = {**objects[0], "metadata": {"name": "bad"}, "spec": {"partitions": 0}}
    status, body = kube_server.request("POST", f"/apis/kafka.strimzi.io/v1/namespaces/{ns}/kafkatopics", bad_topic)
    assert status == 422, body
    # A current Strimzi (1.x) serves only v1.
    status, _ = kube_server.request("GET", f"/apis/kafka.strimzi.io/v1beta2/namespaces/{ns}/kafkatopics")
    assert status == 404


def test_rbac_is_enforced_for_service_accounts(kube_server: KubeAPI) -> None:
    ns = kube_server.create_namespace("rbac")
    user = f"system:serviceaccount:{ns}:nobody"

    status, body = kube_server.request("GET", f"/api/v1/namespaces/{ns}/configmaps", impersonate=user)

    assert status == 403, body
    assert "forbidden" in body["message"]


async def test_lightkube_async_client_talks_to_the_server(kube_server: KubeAPI) -> None:
    from lightkube.resources.core_v1 import Namespace

    client = kube_server.async_client()
    try:
        names = [ns.metadata.name async for ns in client.list(Namespace) if ns.metadata]
    finally:
        await client.close()
    assert "default" in names
