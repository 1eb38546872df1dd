"""A real Kubernetes API server, envtest style: etcd + kube-apiserver, no kubelet, no controllers, no pods.

What is real: storage in etcd, CRD installation and server-side OpenAPI validation, admission of built-in
types, RBAC authorization (the admin client is in `system:masters`; tests can impersonate ServiceAccounts and
users and get real 403s), watches, server-side apply, status subresources, ServiceAccount token issuance.
What is not: nothing schedules or runs pods, no controller-manager (Deployments never get ReplicaSets,
namespaces are not finalized on delete, garbage collection does not run), no webhooks.

All certificates are generated per session: one CA signs the serving certificate (127.0.0.1/localhost), the
admin client certificate (O=system:masters) and is the client CA. The kubeconfig embeds them.
"""

from __future__ import annotations

import base64
import functools
import json
import ssl
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tests.support.certs import CertificateAuthority, service_account_keypair
from tests.support.procs import ManagedProcess, free_ports, wait_for

if TYPE_CHECKING:
    from lightkube import AsyncClient, Client

SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"  # the first address of the range: the `kubernetes` Service's ClusterIP


class CrdInstallError(RuntimeError):
    """The API server refused a CustomResourceDefinition."""


@dataclass
class KubeAPI:
    """A running API server: URL, kubeconfig, TLS files, and clients."""

    server: str
    kubeconfig: Path
    ca_file: Path
    client_cert: Path
    client_key: Path
    etcd: ManagedProcess
    apiserver: ManagedProcess
    ca: CertificateAuthority
    service_account_key: Path
    start_seconds: float = 0.0
    crds_installed: list[str] = field(default_factory=list)

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        ctx.load_cert_chain(str(self.client_cert), str(self.client_key))
        return ctx

    def get(self, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
        """A raw authenticated GET (status, body), for probes and debugging."""
        try:
            with urllib.request.urlopen(self.server + path, timeout=timeout, context=self.ssl_context()) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def client(self, namespace: str = "default") -> Client:
        """A synchronous lightkube client authenticated as cluster admin."""
        from lightkube import Client, KubeConfig

        return Client(config=KubeConfig.from_file(self.kubeconfig), namespace=namespace, field_manager="tests")

    def async_client(self, namespace: str = "default") -> AsyncClient:
        """An asyncio lightkube client authenticated as cluster admin (close it with `await c.close()`)."""
        from lightkube import AsyncClient, KubeConfig

        return AsyncClient(config=KubeConfig.from_file(self.kubeconfig), namespace=namespace, field_manager="tests")

    def create_namespace(self, prefix: str = "test") -> str:
        """Create a uniquely named namespace so tests never see each other's objects."""
        from lightkube.models.meta_v1 import ObjectMeta
        from lightkube.resources.core_v1 import Namespace

        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.client().create(Namespace(metadata=ObjectMeta(name=name)))
        return name

    def request(
        self,
        method: str,
        path: str,
        body: Any | None = None,
        *,
        impersonate: str | None = None,
        timeout: float = 30.0,
        content_type: str = "application/json",
    ) -> tuple[int, Any]:
        """A raw authenticated JSON request: (status, decoded body). Never raises for HTTP errors.

        `impersonate` sends the request as that user (e.g. `system:serviceaccount:ns:name`), so RBAC is
        evaluated for them rather than for the admin.
        """
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": content_type}
        if impersonate:
            headers["Impersonate-User"] = impersonate
        req = urllib.request.Request(self.server + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self.ssl_context()) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def install_crds(self, crds: Iterable[dict[str, Any]], timeout: float = 60.0) -> list[str]:
        """Create (or replace) CRDs and wait until each is Established and its resource is served.

        The dicts are sent as they are (no client-side model), so the API server alone decides whether
        they are valid; a rejection raises CrdInstallError with the server's message.
        """
        base = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        names = []
        for crd in crds:
            name = crd["metadata"]["name"]
            status, body = self.request("POST", base, crd)
            if status == 409:
                _, existing = self.request("GET", f"{base}/{name}")
                crd = {
                    **crd,
                    "metadata": {**crd["metadata"], "resourceVersion": existing["metadata"]["resourceVersion"]},
                }
                status, body = self.request("PUT", f"{base}/{name}", crd)
            if status not in (200, 201):
                message = body.get("message") if isinstance(body, dict) else body
                raise CrdInstallError(f"the API server rejected CRD {name} (HTTP {status}): {message}")
            names.append(name)
        for name in names:
            wait_for(functools.partial(self._crd_established, name), timeout=timeout, what=f"CRD {name} Established")
        self.crds_installed.extend(n for n in names if n not in self.crds_installed)
        return names

    def _crd_established(self, name: str) -> bool:
        _, crd = self.request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
        conditions = crd.get("status", {}).get("conditions") or []
        if not any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
            return False
        # Established can precede discovery by a moment; wait until the API path answers.
        spec = crd["spec"]
        version = next(v["name"] for v in spec["versions"] if v["served"])
        status, _ = self.get(f"/apis/{spec['group']}/{version}/{spec['names']['plural']}?limit=1")
        return status == 200

    def stop(self) -> None:
        self.apiserver.stop()
        self.etcd.stop()


def load_yaml_documents(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """All non-empty YAML documents in the given files, in order."""
    docs: list[dict[str, Any]] = []
    for p in paths:
        docs.extend(d for d in yaml.safe_load_all(p.read_text()) if d)
    return docs


def _kubeconfig(server: str, ca_pem: bytes, cert_pem: bytes, key_pem: bytes) -> dict[str, Any]:
    def b64(b: bytes) -> str:
        return base64.b64encode(b).decode()

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "testbed", "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)}}],
        "users": [
            {
                "name": "testbed-admin",
                "user": {"client-certificate-data": b64(cert_pem), "client-key-data": b64(key_pem)},
            }
        ],
        "contexts": [
            {"name": "testbed", "context": {"cluster": "testbed", "user": "testbed-admin", "namespace": "default"}}
        ],
        "current-context": "testbed",
    }


def _etcd_healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as r:
            return bool(json.loads(r.read()).get("health") == "true")
    except (urllib.error.URLError, OSError, ValueError):
        return False


def start_kube(
    etcd_bin: Path,
    apiserver_bin: Path,
    workdir: Path,
    *,
    timeout: float = 90.0,
    address: str = "127.0.0.1",
    with_node: bool = False,
) -> KubeAPI:
    """Start etcd and kube-apiserver on free ports; return once /readyz is ok and `default` exists.

    The API server listens on `address`. Alone (envtest style) it admits pods without ServiceAccount tokens
    and publishes no endpoints for the `kubernetes` Service. `with_node` readies it for a cluster with a node
    (tests.support.cluster): Node and RBAC authorization, ServiceAccount admission, a client certificate for
    reaching the kubelet by its host name, and `address` published as the `kubernetes` Service's endpoint,
    so pods reach the API server through its ClusterIP."""
    started = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    pki = workdir / "pki"
    ca = CertificateAuthority("algorun-testbed-kube-ca")
    ca_file = ca.write_ca(pki / "ca.crt")
    serving_crt, serving_key = ca.issue(
        "kube-apiserver",
        dns_names=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"),
        ip_addresses=tuple(dict.fromkeys(("127.0.0.1", address, KUBERNETES_SERVICE_IP))),
        server=True,
    ).write(pki, "serving")
    admin = ca.issue("algorun-testbed-admin", organizations=("system:masters",), client=True)
    admin_crt, admin_key = admin.write(pki, "admin")
    sa_key, sa_pub = service_account_keypair(pki)

    etcd_client, etcd_peer, secure_port = free_ports(3)
    etcd_url = f"http://127.0.0.1:{etcd_client}"
    etcd = ManagedProcess(
        "etcd",
        [
            str(etcd_bin),
            "--name=testbed",
            f"--data-dir={workdir / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
            f"--initial-cluster=testbed=http://127.0.0.1:{etcd_peer}",
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ],
        workdir / "etcd.log",
    )
    server = f"https://{address}:{secure_port}"
    if with_node:
        kubelet_client = ca.issue("kube-apiserver-kubelet-client", organizations=("system:masters",), client=True)
        kubelet_crt, kubelet_key = kubelet_client.write(pki, "kubelet-client")
        mode_args = [
            "--authorization-mode=Node,RBAC",
            f"--advertise-address={address}",
            f"--kubelet-client-certificate={kubelet_crt}",
            f"--kubelet-client-key={kubelet_key}",
            "--kubelet-preferred-address-types=Hostname,InternalIP",
        ]
    else:
        mode_args = [
            "--authorization-mode=RBAC",
            f"--advertise-address={address}",
            # No controller-manager creates the token controller's secrets; admit pods without them.
            "--disable-admission-plugins=ServiceAccount",
            "--endpoint-reconciler-type=none",
        ]
    apiserver: ManagedProcess | None = None
    try:
        wait_for(lambda: _etcd_healthy(etcd_url), timeout=timeout, what="etcd /health", proc=etcd)
        apiserver = ManagedProcess(
            "kube-apiserver",
            [
                str(apiserver_bin),
                f"--etcd-servers={etcd_url}",
                f"--bind-address={address}",
                f"--secure-port={secure_port}",
                f"--cert-dir={workdir / 'certs'}",
                f"--tls-cert-file={serving_crt}",
                f"--tls-private-key-file={serving_key}",
                f"--client-ca-file={ca_file}",
                *mode_args,
                f"--service-account-issuer={server}",
                f"--service-account-key-file={sa_pub}",
                f"--service-account-signing-key-file={sa_key}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--allow-privileged=true",
                "--v=1",
            ],
            workdir / "kube-apiserver.log",
        )
        kube = KubeAPI(
            server=server,
            kubeconfig=workdir / "kubeconfig",
            ca_file=ca_file,
            client_cert=admin_crt,
            client_key=admin_key,
            etcd=etcd,
            apiserver=apiserver,
            ca=ca,
            service_account_key=sa_key,
        )
        kube.kubeconfig.write_text(yaml.safe_dump(_kubeconfig(server, ca.cert_pem, admin.cert_pem, admin.key_pem)))
        kube.kubeconfig.chmod(0o600)
        ap = apiserver
        wait_for(lambda: kube.get("/readyz", timeout=3)[0] == 200, timeout=timeout, what="/readyz", proc=ap)
        wait_for(
            lambda: kube.get("/api/v1/namespaces/default", timeout=3)[0] == 200,
            timeout=timeout,
            what="the default namespace",
            proc=ap,
        )
    except BaseException:
        if apiserver is not None:
            apiserver.stop()
        etcd.stop()
        raise
    kube.start_seconds = time.monotonic() - started
    return kube
