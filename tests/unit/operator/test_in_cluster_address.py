"""In a pod the operator reaches the API server at the address the kubelet puts in its environment, never by
the DNS name `kubernetes.default.svc` (a cluster without DNS cannot resolve it; client-go does the same)."""

from __future__ import annotations

from algorun.operator.service import in_cluster_server


def test_the_address_comes_from_the_pods_environment() -> None:
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}

    assert in_cluster_server(env) == "https://10.96.0.1:443"


def test_an_ipv6_service_address_is_bracketed() -> None:
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"}

    assert in_cluster_server(env) == "https://[fd00::1]:6443"


def test_outside_a_pod_there_is_no_in_cluster_address() -> None:
    assert in_cluster_server({}) is None
    assert in_cluster_server({"KUBERNETES_SERVICE_HOST": "10.96.0.1"}) is None
