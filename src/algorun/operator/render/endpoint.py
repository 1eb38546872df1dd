"""The ingestion endpoint: config ConfigMap, workload, Service and HPA.

The workload is a Deployment, or a StatefulSet with a PersistentVolumeClaim per replica when the endpoint's
write-ahead log is on disk (`producer.wal` present, mode not `disable`, not in memory): a disk log must survive
restarts of its pod, which only a StatefulSet's claim gives. Switching between the two replaces one by the
other (the operator prunes the old kind). The HPA targets whichever kind is rendered. Kafka TLS and auth
reach the endpoint through the same env vars and mounts as the runner (`security`), for every auth type.

With `ENDPOINT_TLS_ISSUER` set, the endpoint serves HTTPS and gRPC over TLS with a certificate cert-manager
issues for its Service's names (a `Certificate` whose Secret is mounted at `TLS_DIR`); the endpoint picks up
renewals itself, and traffic inside the cluster is encrypted too. Without it, TLS is the ingress's job.

With `spec.endpoint.auth`, the Secret it names is mounted at `AUTH_DIR` (its two keys as the files the endpoint
reads, `ALGORUN_ENDPOINT_CREDENTIALS_DIR`), so rotated credentials reach the pod without a restart.
"""

from __future__ import annotations

import json
from typing import Any

from algorun.api import configs
from algorun.api.enums import WalMode
from algorun.operator.render import security
from algorun.operator.render.context import RenderContext
from algorun.operator.render.labels import COMPONENT, PART_OF, PIPELINE_DEPLOYMENT, common_labels, metadata, suffixed
from algorun.operator.render.workload import (
    autoscaled,
    health_probe,
    hpa,
    image_of,
    listen_port,
    pod_annotations,
    probe,
    resources,
)

HTTP_PORT = 18080
GRPC_PORT = 18282
METRICS_PORT = 28080
CONFIG_KEY = "endpoint-config"
CONFIG_DIR = "/endpoint-config"
CONFIG_FILE = "endpoint-config.json"
WAL_DEFAULT_PATH = "/data/wal"
WAL_DEFAULT_SIZE = "1Gi"
TLS_DIR = "/endpoint-tls"
TLS_VOLUME = "endpoint-tls"
AUTH_DIR = "/endpoint-auth"
AUTH_VOLUME = "endpoint-auth"
IMAGE_GROUP = 10001
"""The group algorun's image runs as (images/Dockerfile). The pod's fsGroup: the kubelet gives the write-ahead log's
volume and the mounted Secrets (mode 0440: a private key is not for everyone) to this group, which every container
of the pod gets as a supplementary group, so a non-root endpoint can write its log and read its key and
credentials, whatever user another image runs as."""


def name(ctx: RenderContext) -> str:
    return suffixed("endpoint", ctx.owner, ctx.name)


def service_name(ctx: RenderContext) -> str:
    return name(ctx)


def serves_tls(ctx: RenderContext) -> bool:
    return bool(ctx.settings.endpoint_tls_issuer)


def tls_secret_name(ctx: RenderContext) -> str:
    return suffixed("endpoint-tls", ctx.owner, ctx.name)


def service_dns_names(ctx: RenderContext) -> list[str]:
    """Every name a client in the cluster may use for the endpoint's Service."""
    svc = service_name(ctx)
    return [svc, f"{svc}.{ctx.ns}", f"{svc}.{ctx.ns}.svc", f"{svc}.{ctx.ns}.svc.cluster.local"]


def certificate(ctx: RenderContext, labels: dict[str, str]) -> dict[str, Any]:
    """The cert-manager Certificate of the endpoint's serving certificate. The private key is replaced at each
    renewal (`rotationPolicy: Always`), so a leaked key stops working at the next renewal."""
    s = ctx.settings
    spec: dict[str, Any] = {
        "secretName": tls_secret_name(ctx),
        "dnsNames": service_dns_names(ctx),
        "usages": ["server auth", "digital signature", "key encipherment"],
        "privateKey": {"rotationPolicy": "Always"},
        "issuerRef": {
            "name": s.endpoint_tls_issuer,
            "kind": s.endpoint_tls_issuer_kind,
            "group": s.endpoint_tls_issuer_group,
        },
    }
    common_name = f"{service_name(ctx)}.{ctx.ns}.svc"
    if len(common_name) <= 64:  # X.509's limit; the SANs are what clients check, some issuers still want a CN
        spec["commonName"] = common_name
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": metadata(ctx.ident, tls_secret_name(ctx), ctx.ns, labels),
        "spec": spec,
    }


def ports(ctx: RenderContext) -> tuple[int, int, int]:
    server = ctx.topology.spec.endpoint.server
    return (
        listen_port(server.http.listen if server and server.http else None, HTTP_PORT),
        listen_port(server.grpc.listen if server and server.grpc else None, GRPC_PORT),
        listen_port(server.monitoring.listen if server and server.monitoring else None, METRICS_PORT),
    )


def wal_on_disk(ctx: RenderContext) -> bool:
    producer = ctx.topology.spec.endpoint.producer
    wal = producer.wal if producer else None
    return bool(wal and wal.mode != WalMode.DISABLE and not wal.in_memory)


def render_endpoint(ctx: RenderContext) -> list[dict[str, Any]]:
    endpoint = ctx.topology.spec.endpoint
    if not endpoint.paths:
        return []
    labels = common_labels(ctx.ident, "endpoint")
    selector = {k: labels[k] for k in (PART_OF, COMPONENT, PIPELINE_DEPLOYMENT)}
    workload_name = name(ctx)
    config_name = suffixed("endpoint-config", ctx.owner, ctx.name)
    data = {CONFIG_KEY: json.dumps(configs.endpoint_config(ctx.topology).to_json(), indent=2, sort_keys=True)}
    http_port, grpc_port, metrics_port = ports(ctx)
    image, pull = image_of(endpoint.image, ctx.settings.endpoint_image, ctx.settings.endpoint_image_pull_policy)
    mounts: list[dict[str, Any]] = [{"name": "endpoint-config", "mountPath": CONFIG_DIR, "readOnly": True}]
    volumes: list[dict[str, Any]] = [
        {
            "name": "endpoint-config",
            "configMap": {
                "name": config_name,
                "defaultMode": 0o444,
                "items": [{"key": CONFIG_KEY, "path": CONFIG_FILE}],
            },
        },
        *security.secret_volumes(ctx),
    ]
    mounts += security.secret_mounts(ctx)
    env = security.data_plane_env(ctx)
    if endpoint.auth is not None:
        auth = endpoint.auth
        volumes.append(
            {
                "name": AUTH_VOLUME,
                "secret": {
                    "secretName": auth.secret_name,
                    "defaultMode": 0o440,
                    # Optional: a key the Secret lacks is no file; the endpoint refuses to start with neither.
                    "optional": True,
                    "items": [
                        {"key": auth.bearer_tokens_key, "path": "bearer-tokens"},
                        {"key": auth.api_keys_key, "path": "api-keys"},
                    ],
                },
            }
        )
        mounts.append({"name": AUTH_VOLUME, "mountPath": AUTH_DIR, "readOnly": True})
        env.append({"name": "ALGORUN_ENDPOINT_CREDENTIALS_DIR", "value": AUTH_DIR})
    if serves_tls(ctx):
        volumes.append({"name": TLS_VOLUME, "secret": {"secretName": tls_secret_name(ctx), "defaultMode": 0o440}})
        # The whole directory, not subPath mounts: the kubelet updates a directory mount in place on renewal.
        mounts.append({"name": TLS_VOLUME, "mountPath": TLS_DIR, "readOnly": True})
        env += [
            {"name": "ALGORUN_ENDPOINT_TLS_CERT", "value": f"{TLS_DIR}/tls.crt"},
            {"name": "ALGORUN_ENDPOINT_TLS_KEY", "value": f"{TLS_DIR}/tls.key"},
        ]
    stateful = wal_on_disk(ctx)
    wal = endpoint.producer.wal if endpoint.producer else None
    if stateful:
        mounts.append({"name": "wal-data", "mountPath": (wal.path if wal and wal.path else WAL_DEFAULT_PATH)})
    # Probes go to the monitoring port, which is plain HTTP even when the data ports use TLS or mTLS (a kubelet
    # httpGet would fail there). Readiness is /ready: the endpoint takes traffic only once it can accept data.
    default_probes = {
        "livenessProbe": health_probe("metrics", initial_delay=10, period=20, timeout=10),
        "readinessProbe": health_probe("metrics", path="/ready", initial_delay=5, period=10, timeout=5),
    }
    container: dict[str, Any] = {
        "name": "endpoint",
        "image": image,
        "command": ["algorun", "endpoint", "--config", f"{CONFIG_DIR}/{CONFIG_FILE}"],
        "env": env,
        "ports": [
            {"name": "http", "containerPort": http_port, "protocol": "TCP"},
            {"name": "grpc", "containerPort": grpc_port, "protocol": "TCP"},
            {"name": "metrics", "containerPort": metrics_port, "protocol": "TCP"},
        ],
        "volumeMounts": mounts,
    }
    if pull:
        container["imagePullPolicy"] = pull
    for key, spec in (("livenessProbe", endpoint.liveness_probe), ("readinessProbe", endpoint.readiness_probe)):
        value = probe(spec, default_probes[key])
        if value:
            container[key] = value
    res = resources(endpoint.resources)
    if res:
        container["resources"] = res
    workload_spec: dict[str, Any] = {
        "selector": {"matchLabels": selector},
        "revisionHistoryLimit": 10,
        "template": {
            "metadata": {"labels": labels, "annotations": pod_annotations(ctx.ident.owner_key, data)},
            "spec": {
                "securityContext": {"fsGroup": IMAGE_GROUP, "fsGroupChangePolicy": "OnRootMismatch"},
                "containers": [container],
                "volumes": volumes,
            },
        },
    }
    if not autoscaled(endpoint.autoscaling):
        workload_spec["replicas"] = endpoint.replicas
    kind = "StatefulSet" if stateful else "Deployment"
    if stateful:
        workload_spec["serviceName"] = service_name(ctx)
        workload_spec["volumeClaimTemplates"] = [
            {
                "metadata": {"name": "wal-data"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": str(wal.size) if wal and wal.size else WAL_DEFAULT_SIZE}},
                },
            }
        ]
    else:
        workload_spec["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    grpc_service_port: dict[str, Any] = {"name": "grpc", "port": grpc_port, "targetPort": "grpc", "protocol": "TCP"}
    if not serves_tls(ctx):
        grpc_service_port["appProtocol"] = "kubernetes.io/h2c"  # HTTP/2 in clear text, for Gateway API backends
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata(ctx.ident, config_name, ctx.ns, labels),
            "data": data,
        },
        {
            "apiVersion": "apps/v1",
            "kind": kind,
            "metadata": metadata(ctx.ident, workload_name, ctx.ns, labels),
            "spec": workload_spec,
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata(ctx.ident, service_name(ctx), ctx.ns, labels),
            "spec": {
                "selector": selector,
                "ports": [
                    {"name": "http", "port": http_port, "targetPort": "http", "protocol": "TCP"},
                    grpc_service_port,
                    {"name": "metrics", "port": metrics_port, "targetPort": "metrics", "protocol": "TCP"},
                ],
            },
        },
    ]
    if serves_tls(ctx):
        objects.append(certificate(ctx, labels))
    if autoscaled(endpoint.autoscaling):
        assert endpoint.autoscaling is not None
        meta = metadata(ctx.ident, workload_name, ctx.ns, common_labels(ctx.ident, "endpoint-hpa"))
        objects.append(hpa(meta, kind, workload_name, endpoint.autoscaling, endpoint.replicas))
    return objects
