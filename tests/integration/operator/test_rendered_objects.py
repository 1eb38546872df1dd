"""What `algorun render` writes is what a real API server accepts: every example, under every operator settings
profile, server-side applied (dry run) with strict field validation, against the real Strimzi CRDs of a current
release (kafka.strimzi.io/v1) and, rendered with `--api-versions kafka.strimzi.io/v1beta2`, of the last 0.x."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from algorun.cli.operator_commands import render_offline
from algorun.operator import kinds
from algorun.operator.apis import assumed
from tests.support.kube import KubeAPI
from tests.support.operator_render import golden_settings, load
from tests.support.paths import EXAMPLES

pytestmark = pytest.mark.integration

EXAMPLE_NAMES = sorted(p.parent.name for p in EXAMPLES.glob("*/pipeline.yaml"))
PROFILES: dict[str, dict[str, Any]] = {
    "tls-auth-storage": {},
    "scram": {"kafka_auth_type": "scram-sha-512"},
    "plain": {"kafka_auth_type": "plain", "kafka_auth_username": "pipelines", "kafka_tls": False},
    "no-auth-no-storage": {"kafka_auth_type": "none", "kafka_tls": False, "storage_secret_name": ""},
    "endpoint-tls": {"endpoint_tls_issuer": "pipelines-ca"},
    "gateway": {"endpoint_routing": "gateway", "gateway_name": "public", "gateway_namespace": "gateways"},
}


def _ensure_namespace(kube: KubeAPI, name: str) -> None:
    status, body = kube.request(
        "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    assert status in (201, 409), body


def _path(obj: dict[str, Any]) -> str:
    kind = kinds.of(obj)
    base = f"/api/{kind.api_version}" if "/" not in kind.api_version else f"/apis/{kind.api_version}"
    namespace = obj["metadata"].get("namespace")
    where = f"/namespaces/{namespace}" if kind.namespaced and namespace else ""
    return f"{base}{where}/{kind.plural}/{obj['metadata']['name']}"


def _refusals(kube: KubeAPI, objects: list[dict[str, Any]]) -> list[str]:
    """Each object the server refuses (server-side apply, dry run, strict field validation), with its message."""
    refused = []
    for namespace in sorted({o["metadata"]["namespace"] for o in objects if o["metadata"].get("namespace")}):
        _ensure_namespace(kube, namespace)
    for obj in objects:
        query = "fieldManager=algorun-operator&force=true&dryRun=All&fieldValidation=Strict"
        status, body = kube.request(
            "PATCH", f"{_path(obj)}?{query}", json.loads(json.dumps(obj)), content_type="application/apply-patch+yaml"
        )
        if status not in (200, 201):
            message = body.get("message") if isinstance(body, dict) else body
            refused.append(f"{obj['apiVersion']} {obj['kind']} {obj['metadata']['name']}: HTTP {status} {message}")
    return refused


def _rendered(name: str, profile: str, api_versions: list[str]) -> list[dict[str, Any]]:
    pipeline, topology = load(name)
    text = render_offline(pipeline, topology, golden_settings(**PROFILES[profile]), "algorun", assumed(api_versions))
    return [d for d in yaml.safe_load_all(text) if d]


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_current_strimzi_accepts_what_render_writes(kube_server: KubeAPI, name: str, profile: str) -> None:
    objects = _rendered(name, profile, [])
    assert {o["apiVersion"] for o in objects if o["kind"] == "KafkaTopic"} == {"kafka.strimzi.io/v1"}
    assert _refusals(kube_server, objects) == []


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_strimzi_0x_accepts_v1beta2_render(kube_server_strimzi0: KubeAPI, name: str, profile: str) -> None:
    objects = _rendered(name, profile, ["kafka.strimzi.io/v1beta2"])
    assert {o["apiVersion"] for o in objects if o["kind"] == "KafkaTopic"} == {"kafka.strimzi.io/v1beta2"}
    assert _refusals(kube_server_strimzi0, objects) == []


def test_strict_validation_refuses_what_the_schema_does_not_know(kube_server: KubeAPI) -> None:
    """The check above can fail: a v1beta2-form KafkaConnect (storage topics in config, no groupId) and an
    unknown field are refused by the current Strimzi's real schema."""
    objects = [o for o in _rendered("data-connector", "tls-auth-storage", ["kafka.strimzi.io/v1beta2"])]
    connect = next(o for o in objects if o["kind"] == "KafkaConnect")
    old_form = {**connect, "apiVersion": "kafka.strimzi.io/v1"}
    topic = next(o for o in _rendered("data-connector", "tls-auth-storage", []) if o["kind"] == "KafkaTopic")
    unknown = {**topic, "spec": {**topic["spec"], "retentionMs": 1}}
    refused = _refusals(kube_server, [old_form, unknown])
    assert len(refused) == 2, refused
    assert "groupId" in refused[0] and "retentionMs" in refused[1], refused
