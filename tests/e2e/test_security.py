"""Kafka security on the cluster: the broker's SCRAM-SHA-512 listener over TLS, set through the chart's
`kafka.tls.*` and `kafka.auth.*` values. The operator writes a KafkaUser, Strimzi's stand-in creates the SCRAM
credential and its Secret (as the User Operator does), the operator copies that Secret and the cluster CA
Secret into the pipeline's namespace, and the pods authenticate with them; data flows end to end. With the
credential changed behind the pods' back, they cannot authenticate, and the PipelineDeployment says so.

The chart is upgraded to these values for this module and set back afterwards (one operator per cluster).
"""

from __future__ import annotations

import base64
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.support.chart_install import CHART, CLUSTER_VALUES, NAMESPACE, RELEASE, merge
from tests.support.e2e import Operator, Receiver, eventually, post
from tests.support.helm import Helm
from tests.support.paths import EXAMPLES

CA_SECRET = "kafka-cluster-ca-cert"  # Strimzi's name for its cluster CA Secret ({cluster}-cluster-ca-cert)
SECURE_VALUES = {"kafka": {"tls": {"enabled": True, "caSecretName": CA_SECRET}, "auth": {"type": "scram-sha-512"}}}


def _upgrade(helm: Helm, operator: Operator, values: dict[str, object]) -> None:
    """`helm upgrade --wait` of the installed release to the cluster's values plus `values`."""
    path = operator.cluster.workdir / "security-values.yaml"
    path.write_text(yaml.safe_dump(merge(CLUSTER_VALUES, values)))
    helm.run(
        "upgrade", RELEASE, str(CHART), "--namespace", NAMESPACE, "--values", str(path), "--wait", "--timeout", "180s",
        kubeconfig=operator.api.kubeconfig,
        timeout=300,
    )  # fmt: skip


@pytest.fixture(scope="module")
def secure_operator(operator: Operator, cluster_helm: Helm) -> Iterator[Operator]:
    """The chart upgraded to TLS + SCRAM-SHA-512; Strimzi's cluster CA Secret in its namespace."""
    ca = base64.b64encode(operator.kafka.ca_file.read_bytes()).decode()
    secret = {"metadata": {"name": CA_SECRET}, "data": {"ca.crt": ca}}
    status, body = operator.api.request("POST", "/api/v1/namespaces/kafka/secrets", secret)
    assert status in (201, 409), body
    _upgrade(cluster_helm, operator, SECURE_VALUES)
    try:
        yield operator
    finally:
        _upgrade(cluster_helm, operator, {})


def test_a_pipeline_authenticates_with_scram_over_tls(secure_operator: Operator, receiver: Receiver) -> None:
    operator = secure_operator
    namespace = operator.api.create_namespace("e2e-scram")
    pd = operator.prepare("text-transform", receiver, hook_prefix=f"/{namespace}", listener="SASL_SSL")
    began = time.monotonic()
    operator.apply(pd, namespace)
    operator.wait_deployed(namespace, pd["metadata"]["name"])
    print(f"\nSCRAM pipeline Deployed and Ready {time.monotonic() - began:.1f}s after apply")

    _, secrets = operator.api.request("GET", f"/api/v1/namespaces/{namespace}/secrets")
    names = {s["metadata"]["name"] for s in secrets["items"]}
    assert any(n.endswith("-kafka-ca") for n in names) and any(n.endswith("-kafka-user") for n in names), names
    _, pods = operator.api.request("GET", f"/api/v1/namespaces/{namespace}/pods")
    env = {e["name"]: e for p in pods["items"] for c in p["spec"]["containers"] for e in c.get("env") or []}
    assert env["KAFKA_AUTH_TYPE"]["value"] == "scram-sha-512"
    assert "secretKeyRef" in env["KAFKA_AUTH_PASSWORD"]["valueFrom"]

    spec = pd["spec"]
    url = f"{operator.endpoint_url(namespace)}/{spec['deploymentOwner']}/{spec['deploymentName']}/text"
    status, answer = post(url, (EXAMPLES / "text-transform" / "input.txt").read_bytes(), "text/plain")
    assert status in (200, 202), answer
    eventually(
        lambda: len(receiver.deliveries(f"/{namespace}/")) >= 2,
        120,
        "both outputs through the SCRAM listener",
        lambda: operator.describe(namespace, pd["metadata"]["name"]),
    )

    # Wrong credentials: the broker's password for the user changes behind the pods' back (a rotation that did
    # not reach them); a restarted endpoint cannot authenticate, never becomes ready, and the pipeline says so.
    _rotate_in_broker_only(operator, spec["deploymentName"])
    _delete_pods(operator, namespace, "app.kubernetes.io/component=endpoint")
    name = pd["metadata"]["name"]

    def reported() -> dict[str, Any] | None:
        status = operator.pipeline(namespace, name).get("status") or {}
        comp = next((c for c in status.get("componentStatuses") or [] if c.get("name") == "endpoint"), None)
        tail = " ".join((comp or {}).get("logTail") or [])
        return comp if comp and comp.get("reason") and "authenticat" in tail.lower() else None

    comp = eventually(
        reported, 180, "the endpoint's authentication failure in the status", lambda: operator.describe(namespace, name)
    )
    print(f"\nwrong credentials reported as {comp['reason']}: {comp['message']}")
    status = operator.pipeline(namespace, name)["status"]
    assert status["status"] == "Error", status
    operator.delete_namespace(namespace)


def _rotate_in_broker_only(operator: Operator, deployment_name: str) -> None:
    """Give the pipeline's SCRAM user a new password in the broker, leaving its Secret as it was."""
    from confluent_kafka.admin import (  # type: ignore[attr-defined]
        AdminClient,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    _, users = operator.api.request("GET", "/apis/kafka.strimzi.io/v1/namespaces/kafka/kafkausers")
    (user,) = [u["metadata"]["name"] for u in users["items"] if deployment_name in u["metadata"]["name"]]
    admin = AdminClient(operator.kafka.client_config())
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096)
    futures = admin.alter_user_scram_credentials([UserScramCredentialUpsertion(user, info, b"not-the-secrets-one")])
    futures[user].result(30)


def _delete_pods(operator: Operator, namespace: str, selector: str) -> None:
    query = urllib.parse.quote(selector)
    status, body = operator.api.request("DELETE", f"/api/v1/namespaces/{namespace}/pods?labelSelector={query}")
    assert status == 200, body
