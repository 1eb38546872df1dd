"""Cluster DNS for the single-node cluster: CoreDNS as a Deployment behind the Service the kubelet names.

CoreDNS is built from its Go module (testbin/go/coredns) into an image of its own (the `coredns-image` part),
and runs as kubeadm deploys it: a Deployment `coredns` in kube-system with its ServiceAccount and the read-only
RBAC its `kubernetes` plugin needs, a Corefile in a ConfigMap, and the Service `kube-dns` at DNS_SERVICE_IP,
which the kubelet writes into every ClusterFirst pod's resolv.conf. It answers for `cluster.local` only: this
machine has no upstream resolver pods could use, so other names fail fast (NXDOMAIN) instead of timing out.

`host_service` makes a name for something that runs on the host (the test-bed broker): a Service without a
selector and an EndpointSlice pointing at the host's address, so `NAME.NAMESPACE:PORT` resolves and routes in
pods as a Service in the cluster would.
"""

from __future__ import annotations

from typing import Any

from tests.support.kube import SERVICE_CLUSTER_IP_RANGE, KubeAPI
from tests.support.procs import wait_for

DNS_SERVICE_IP = "10.96.0.10"
CLUSTER_DOMAIN = "cluster.local"
NAMESPACE = "kube-system"
LABELS = {"k8s-app": "kube-dns"}
ROLE = "algorun-testbed:coredns"
assert SERVICE_CLUSTER_IP_RANGE == "10.96.0.0/16", "DNS_SERVICE_IP must lie in the Service range"

COREFILE = f""".:53 {{
    errors
    health :8080
    ready :8181
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    cache 5
    loadbalance
}}
"""


def _objects(image: str) -> list[dict[str, Any]]:
    meta = {"name": "coredns", "namespace": NAMESPACE, "labels": LABELS}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": ROLE},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": ROLE},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "algorun-testbed:coredns",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": NAMESPACE}],
        },
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"Corefile": COREFILE}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": LABELS},
                "template": {
                    "metadata": {"labels": LABELS},
                    "spec": {
                        "serviceAccountName": "coredns",
                        "dnsPolicy": "Default",
                        "priorityClassName": "system-cluster-critical",
                        "containers": [
                            {
                                "name": "coredns",
                                "image": image,
                                "imagePullPolicy": "Never",
                                "args": ["-conf", "/etc/coredns/Corefile"],
                                "ports": [
                                    {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                                    {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                                ],
                                "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns", "readOnly": True}],
                                "livenessProbe": {"httpGet": {"path": "/health", "port": 8080}, "periodSeconds": 10},
                                "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}, "periodSeconds": 1},
                                "resources": {
                                    "requests": {"cpu": "10m", "memory": "30Mi"},
                                    "limits": {"memory": "170Mi"},
                                },
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
                                    "readOnlyRootFilesystem": True,
                                },
                            }
                        ],
                        "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": NAMESPACE, "labels": LABELS},
            "spec": {
                "selector": LABELS,
                "clusterIP": DNS_SERVICE_IP,
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                ],
            },
        },
    ]


def _create(api: KubeAPI, obj: dict[str, Any]) -> None:
    group = "/api/v1" if obj["apiVersion"] == "v1" else f"/apis/{obj['apiVersion']}"
    namespace = obj["metadata"].get("namespace")
    plural = {"ClusterRole": "clusterroles", "ClusterRoleBinding": "clusterrolebindings"}.get(
        obj["kind"], obj["kind"].lower() + "s"
    )
    path = f"{group}/namespaces/{namespace}/{plural}" if namespace else f"{group}/{plural}"
    status, body = api.request("POST", path, obj, timeout=10)
    if status not in (201, 409):
        raise RuntimeError(f"creating {obj['kind']} {obj['metadata']['name']}: HTTP {status}: {body}")


def install(api: KubeAPI, image: str) -> None:
    """Create CoreDNS's objects (not waited on: see wait_ready)."""
    for obj in _objects(image):
        _create(api, obj)


def ready(api: KubeAPI) -> bool:
    """The kube-dns Service has a ready endpoint: CoreDNS answers."""
    status, slices = api.request(
        "GET",
        f"/apis/discovery.k8s.io/v1/namespaces/{NAMESPACE}/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Dkube-dns",
        timeout=5,
    )
    if status != 200:
        return False
    return any(
        (e.get("conditions") or {}).get("ready") for s in slices.get("items", []) for e in s.get("endpoints") or []
    )


def wait_ready(api: KubeAPI, timeout: float) -> None:
    wait_for(lambda: ready(api), timeout=timeout, what="CoreDNS ready behind the kube-dns Service")


def host_service(api: KubeAPI, namespace: str, name: str, port: int, host: str, host_port: int) -> None:
    """`name.namespace:port` in pods reaches `host:host_port` on this machine (a selector-less Service and its
    EndpointSlice, as one would front an external database)."""
    _create(api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    _create(
        api,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"ports": [{"name": "tcp", "port": port, "targetPort": host_port, "protocol": "TCP"}]},
        },
    )
    _create(
        api,
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{name}-host",
                "namespace": namespace,
                "labels": {"kubernetes.io/service-name": name},
            },
            "addressType": "IPv4",
            "ports": [{"name": "tcp", "port": host_port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [host], "conditions": {"ready": True}}],
        },
    )
