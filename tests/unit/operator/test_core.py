"""Pure pieces of the operator: the write-avoiding diff, status computation, settings, connection strings."""

from __future__ import annotations

from typing import Any

import pytest

from algorun.api.enums import KafkaAuthType
from algorun.operator.bucket import parse_connection_string
from algorun.operator.diff import is_subset, needs_apply, with_digest
from algorun.operator.render.kafka import keep_partitions
from algorun.operator.settings import OperatorOptions
from algorun.operator.status import Observed, compute, notifications, status_patch


def test_live_object_with_server_defaults_needs_no_apply() -> None:
    desired = with_digest(
        {
            "kind": "Deployment",
            "metadata": {"name": "a", "annotations": {}},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "0.5"}}}]}}},
        }
    )
    live: dict[str, Any] = {
        "kind": "Deployment",
        "metadata": {"name": "a", "annotations": dict(desired["metadata"]["annotations"]), "uid": "x"},
        "spec": {
            "progressDeadlineSeconds": 600,
            "template": {
                "spec": {
                    "containers": [{"name": "c", "resources": {"limits": {"cpu": "500m"}}, "imagePullPolicy": "Always"}]
                }
            },
        },
        "status": {"replicas": 1},
    }
    assert not needs_apply(desired, live)
    live["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "2"
    assert needs_apply(desired, live), "a hand-edited managed field is drift"
    assert needs_apply(desired, None)


def test_changed_desired_object_needs_apply_even_when_live_is_a_superset() -> None:
    old = with_digest({"kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"x": "1", "y": "2"}})
    new = with_digest({"kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"x": "1"}})
    assert is_subset(new["data"], old["data"])
    assert needs_apply(new, old), "a removed field must be applied (SSA removes it)"


def test_topics_never_shrink() -> None:
    desired = {"kind": "KafkaTopic", "spec": {"partitions": 2}}
    assert keep_partitions(desired, {"spec": {"partitions": 6}})["spec"]["partitions"] == 6
    assert keep_partitions(desired, {"spec": {"partitions": 1}})["spec"]["partitions"] == 2


def _deployment(name: str, ready: int, replicas: int = 1) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {"name": name, "generation": 1, "labels": {"app.kubernetes.io/component": "endpoint"}},
        "spec": {"replicas": replicas},
        "status": {"observedGeneration": 1, "readyReplicas": ready, "updatedReplicas": ready, "replicas": ready},
    }


def _observed(workloads: list[dict[str, Any]], pods: list[dict[str, Any]] | None = None, **kw: Any) -> Observed:
    return Observed(
        owner="o",
        name="n",
        namespace="ns",
        generation=1,
        expected=[("Deployment", "e")],
        workloads=workloads,
        pods=pods or [],
        **kw,
    )


def test_status_transitions_and_conditions() -> None:
    progressing = compute(_observed([_deployment("e", 0)]), None, at="t0")
    assert progressing.status == "Progressing"
    assert {c.type: c.status for c in progressing.conditions} == {
        "Ready": "False",
        "Progressing": "True",
        "Degraded": "False",
    }
    deployed = compute(_observed([_deployment("e", 1)]), progressing, at="t1")
    assert deployed.status == "Deployed"
    ready = next(c for c in deployed.conditions if c.type == "Ready")
    assert ready.status == "True" and ready.last_transition_time == "t1"
    again = compute(_observed([_deployment("e", 1)]), deployed, at="t2")
    assert status_patch(again, deployed.to_json()) is None, "an unchanged status is not written"
    assert notifications(deployed, again, "ns") == []
    kinds_sent = [m.type.value for m in notifications(progressing, deployed, "ns")]
    assert kinds_sent == ["PipelineDeploymentStatus", "PipelineDeployment"]


def test_crash_looping_pod_makes_the_component_error() -> None:
    pod = {
        "metadata": {"name": "e-1", "labels": {"app.kubernetes.io/component": "endpoint"}},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {"name": "endpoint", "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
            ],
        },
    }
    status = compute(_observed([_deployment("e", 0)], [pod]), None)
    assert status.status == "Error"
    assert status.pod_statuses[0].status == "CrashLoopBackOff" and status.pod_statuses[0].restarts == 4
    degraded = next(c for c in status.conditions if c.type == "Degraded")
    assert degraded.status == "True" and "CrashLoopBackOff" in (degraded.message or "")


def test_invalid_spec_is_degraded() -> None:
    status = compute(_observed([], problems=["spec.algos[0].algoRef: no Algo matches name 'x'"]), None)
    assert status.status == "Error"
    degraded = next(c for c in status.conditions if c.type == "Degraded")
    assert degraded.reason == "InvalidSpec" and "algoRef" in (degraded.message or "")


def test_settings_from_the_charts_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_TLS", "true")
    monkeypatch.setenv("KAFKA_AUTH_TYPE", "scram-sha-512")
    monkeypatch.setenv("KAFKA_AUTH_SECRETNAME", "{kafkaclustername}-{deploymentowner}-{deploymentname}")
    monkeypatch.setenv("KAFKA_CLUSTER_NAME", "My-Cluster")
    monkeypatch.setenv("WATCH_NAMESPACE", "a, b")
    settings = OperatorOptions()
    assert settings.kafka_tls and settings.kafka_auth_type == KafkaAuthType.SCRAM_SHA_512
    assert settings.namespaces == ["a", "b"]
    assert settings.kafka_user_name("Acme", "Orders") == "my-cluster-acme-orders"
    assert settings.kafka_username("Acme", "Orders") == "my-cluster-acme-orders"
    assert not settings.storage
    monkeypatch.setenv("ENDPOINT_ROUTING", "nginx")
    with pytest.raises(ValueError, match="ENDPOINT_ROUTING"):
        OperatorOptions()


def test_storage_connection_strings() -> None:
    c = parse_connection_string("https://AKIA:s3cr%2Ft@minio.example:9000")
    assert (c.endpoint, c.access_key, c.secret_key) == ("https://minio.example:9000", "AKIA", "s3cr/t")
    assert parse_connection_string("http://key:se/cr+et@host").secret_key == "se/cr+et"
    with pytest.raises(ValueError, match="no path"):
        parse_connection_string("http://key:secret@host/path")
