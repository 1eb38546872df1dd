"""The chart rendered by the real helm: lint, the values that change what is rendered, the schema, and every
combination applied to the real API server as a server-side dry run (third-party CRDs installed)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.chart_render import (
    Discovery,
    container_env,
    ensure_namespace,
    find,
    render,
    server_apply,
)
from tests.support.helm import Helm
from tests.support.kube import KubeAPI
from tests.support.paths import CHART

pytestmark = pytest.mark.integration

COMBINATIONS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "namespace-scope": {"scope": {"type": "namespace"}},
    "cluster-scope-watch-namespace": {"scope": {"type": "cluster", "watchNamespace": "team-a"}},
    "tls-off": {"kafka": {"tls": {"enabled": False}}},
    "auth-tls": {"kafka": {"auth": {"type": "tls"}}},
    "auth-scram": {"kafka": {"auth": {"type": "scram-sha-512", "passwordSecretKey": "password"}}},
    "auth-plain": {"kafka": {"auth": {"type": "plain", "username": "algorun", "authSecretName": "kafka-plain"}}},
    "metrics-off": {"metrics": {"enabled": False}},
    "dashboards-off": {"metrics": {"createDashboards": False}},
    "autoscaling-on": {
        "autoscaling": {
            "enabled": True,
            "minReplicas": 2,
            "maxReplicas": 3,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                }
            ],
        }
    },
    "notifications-on": {"notifications": {"enabled": True, "url": "http://notify.example.com/hooks"}},
    "gateway-routing": {"endpointRouting": {"type": "gateway", "gatewayName": "public", "gatewayNamespace": "gw"}},
    "storage-on": {"storage": {"enabled": True}},
    "endpoint-tls": {"endpointTls": {"enabled": True, "issuerName": "internal-ca", "issuerKind": "Issuer"}},
    "no-rbac-existing-sa": {"rbac": {"create": False}, "serviceAccount": {"create": False, "name": "ops"}},
}


def test_lint_strict_is_clean(helm: Helm) -> None:
    out = helm.run("lint", "--strict", str(CHART))

    assert "1 chart(s) linted, 0 chart(s) failed" in out.stdout
    assert "[WARNING]" not in out.stdout and "[ERROR]" not in out.stdout


@pytest.mark.parametrize("combo", ["namespace-scope", "auth-scram", "autoscaling-on", "notifications-on"])
def test_lint_strict_is_clean_for(helm: Helm, combo: str, tmp_path: Path) -> None:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(COMBINATIONS[combo]))

    out = helm.run("lint", "--strict", str(CHART), "-f", str(values_file))

    assert "0 chart(s) failed" in out.stdout


def test_defaults_render_the_operator_and_its_rbac(helm: Helm, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, {})

    kinds = sorted({d["kind"] for d in docs})
    assert kinds == [
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
    ]
    (deployment,) = find(docs, "Deployment", "algorun-pipeline-operator")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "algorun/algorun:0.2.0"
    assert container["command"] == ["algorun", "operator"]
    assert container["args"] == ["--standalone"]
    assert {p["containerPort"] for p in container["ports"]} == {8080, 8383}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    env = container_env(docs)
    assert env["WATCH_NAMESPACE"] == ""
    assert env["KAFKA_TLS"] == "true" and env["KAFKA_TLS_CA_SECRETNAME"] == "kafka-cluster-ca-cert"
    assert "KAFKA_AUTH_TYPE" not in env and "NOTIF_URL" not in env
    assert env["ALGORUNNER_IMAGE"] == env["ENDPOINT_IMAGE"] == env["HOOK_IMAGE"] == "algorun/algorun:0.2.0"
    assert len(find(docs, "ServiceMonitor")) == 5
    assert len(find(docs, "ConfigMap")) == 5  # four dashboards and the data source


def test_fullname_follows_the_seed_rule(helm: Helm, tmp_path: Path) -> None:
    names = {
        release: {
            d["metadata"]["name"] for d in render(helm, tmp_path, {}, release=release) if d["kind"] == "Deployment"
        }
        for release in ("algorun-pipeline-operator", "prod-algorun-pipeline-operator", "my-pipeline-operator")
    }
    override = render(helm, tmp_path, {"fullnameOverride": "ops", "nameOverride": "x"}, release="r")
    renamed = render(helm, tmp_path, {"nameOverride": "pipes"}, release="r")

    assert names["algorun-pipeline-operator"] == {"algorun-pipeline-operator"}
    assert names["prod-algorun-pipeline-operator"] == {"prod-algorun-pipeline-operator"}
    assert names["my-pipeline-operator"] == {"my-pipeline-operator-pipeline-operator"}
    assert {d["metadata"]["name"] for d in find(override, "Deployment")} == {"ops"}
    assert {d["metadata"]["name"] for d in find(renamed, "Deployment")} == {"r-pipes"}


def test_rbac_name_override_names_every_rbac_object(helm: Helm, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, {"rbac": {"nameOverride": "algorun-east"}})

    rbac = [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")]
    assert {d["metadata"]["name"] for d in rbac} == {"algorun-east", "algorun-east-kafka"}


def test_scope_type_chooses_cluster_or_namespaced_rbac(helm: Helm, tmp_path: Path) -> None:
    cluster = render(helm, tmp_path, {}, namespace="ops")
    namespaced = render(helm, tmp_path, {"scope": {"type": "namespace"}}, namespace="ops")

    (cluster_role,) = find(cluster, "ClusterRole")
    assert any("deployments" in r["resources"] for r in cluster_role["rules"])
    (narrow,) = find(namespaced, "ClusterRole")
    assert {res for r in narrow["rules"] for res in r["resources"]} == {
        "algos",
        "dataconnectors",
        "customresourcedefinitions",
        "namespaces",
    }
    roles = {d["metadata"]["namespace"]: d for d in find(namespaced, "Role")}
    assert set(roles) == {"ops", "kafka"}
    assert any("deployments" in r["resources"] for r in roles["ops"]["rules"])
    assert container_env(namespaced)["WATCH_NAMESPACE"] == "ops"


def test_auth_types_set_the_operator_env(helm: Helm, tmp_path: Path) -> None:
    tls = container_env(render(helm, tmp_path, COMBINATIONS["auth-tls"]))
    scram = container_env(render(helm, tmp_path, COMBINATIONS["auth-scram"]))
    plain = container_env(render(helm, tmp_path, COMBINATIONS["auth-plain"]))

    assert tls["KAFKA_AUTH_TYPE"] == "tls"
    assert tls["KAFKA_AUTH_CERTIFICATE_KEY"] == "user.crt" and tls["KAFKA_AUTH_KEY_SECRET_KEY"] == "user.key"
    assert scram["KAFKA_AUTH_TYPE"] == "scram-sha-512" and scram["KAFKA_AUTH_PASSWORD_SECRET_KEY"] == "password"
    assert "KAFKA_AUTH_CERTIFICATE_KEY" not in scram
    assert plain["KAFKA_AUTH_USERNAME"] == "algorun" and plain["KAFKA_AUTH_SECRETNAME"] == "kafka-plain"


def test_the_rendered_env_is_valid_operator_settings(helm: Helm, tmp_path: Path) -> None:
    from algorun.operator.settings import OperatorOptions

    for combo in ("defaults", "auth-tls", "auth-scram", "auth-plain", "storage-on", "gateway-routing", "endpoint-tls"):
        env = {
            k: v for k, v in container_env(render(helm, tmp_path, COMBINATIONS[combo])).items() if isinstance(v, str)
        }
        settings = OperatorOptions.model_validate({k.lower(): v for k, v in env.items()})
        assert settings.kafka_namespace == "kafka", combo
        assert settings.algorunner_image == "algorun/algorun:0.2.0", combo


def test_service_monitor_values_are_wired(helm: Helm, tmp_path: Path) -> None:
    relabel = [{"sourceLabels": ["__name__"], "regex": "go_.*", "action": "drop"}]
    docs = render(
        helm,
        tmp_path,
        {
            "metrics": {
                "serviceMonitorNamespace": "monitoring",
                "algoServiceMonitor": {
                    "interval": "15s",
                    "scrapeTimeout": "10s",
                    "relabellings": relabel,
                    "honorLabels": True,
                    "additionalLabels": {"team": "data"},
                    "namespace": "prom",
                    "release": "kube-prometheus",
                },
                "dataConnectorServiceMonitor": {"enabled": False},
            }
        },
    )

    monitors = {d["metadata"]["name"].rsplit("-", 1)[1]: d for d in find(docs, "ServiceMonitor")}
    assert set(monitors) == {"operator", "algo", "endpoint", "hook"}
    algo = monitors["algo"]
    assert algo["metadata"]["namespace"] == "prom"
    assert algo["metadata"]["labels"]["team"] == "data"
    assert algo["metadata"]["labels"]["release"] == "kube-prometheus"
    (endpoint,) = algo["spec"]["endpoints"]
    assert endpoint == {
        "port": "metrics",
        "path": "/metrics",
        "interval": "15s",
        "scrapeTimeout": "10s",
        "honorLabels": True,
        "metricRelabelings": relabel,
    }
    assert algo["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/part-of": "algo.run",
        "app.kubernetes.io/component": "algo",
    }
    assert algo["spec"]["namespaceSelector"] == {"any": True}
    assert monitors["endpoint"]["metadata"]["namespace"] == "monitoring"
    assert "release" not in monitors["endpoint"]["metadata"]["labels"]


def test_metrics_off_removes_ports_monitors_and_dashboards(helm: Helm, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, COMBINATIONS["metrics-off"])

    assert not find(docs, "ServiceMonitor") and not find(docs, "ConfigMap") and not find(docs, "Service")
    (deployment,) = find(docs, "Deployment")
    assert [p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]] == ["health"]


def test_without_the_prometheus_operator_no_servicemonitor_is_rendered(helm: Helm, tmp_path: Path) -> None:
    """The defaults (metrics on) on a cluster that serves no ServiceMonitor kind: the chart installs, without the
    monitors it could not create; the metrics port and Service stay for any other scraper."""
    docs = render(helm, tmp_path, {}, api_versions=())

    assert not find(docs, "ServiceMonitor")
    assert len(find(docs, "Service")) == 1
    (deployment,) = find(docs, "Deployment")
    assert "http-metrics" in [p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]]


def test_dashboards_are_labelled_for_the_grafana_sidecar(helm: Helm, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, {"metrics": {"prometheusOperatorNamespace": "monitoring"}})
    off = render(helm, tmp_path, COMBINATIONS["dashboards-off"])

    maps = find(docs, "ConfigMap")
    dashboards = [m for m in maps if m["metadata"]["labels"].get("grafana_dashboard") == "1"]
    sources = [m for m in maps if m["metadata"]["labels"].get("grafana_datasource") == "1"]
    assert sorted(next(iter(m["data"])) for m in dashboards) == [
        "algorun-algos.json",
        "algorun-endpoint.json",
        "algorun-hooks.json",
        "algorun-operator.json",
    ]
    assert len(sources) == 1
    assert {m["metadata"]["namespace"] for m in maps} == {"monitoring"}
    assert not find(off, "ConfigMap") and len(find(off, "ServiceMonitor")) == 5


def test_pod_settings_are_passed_through(helm: Helm, tmp_path: Path) -> None:
    values = {
        "podSecurityContext": {"runAsUser": 2000, "fsGroup": 2000},
        "securityContext": {"privileged": False},
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["ops"]}]}]
                }
            }
        },
        "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
        "nodeSelector": {"pool": "ops"},
        "imagePullSecrets": [{"name": "registry"}],
        "podAnnotations": {"a": "b"},
        "resources": {"limits": {"memory": "256Mi"}},
        "env": {"LOG_LEVEL": "debug", "TOKEN": {"secretKeyRef": {"name": "s", "key": "k"}}},
        "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn"}},
    }
    docs = render(helm, tmp_path, values)

    (deployment,) = find(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"] == values["podSecurityContext"]
    assert container["securityContext"] == values["securityContext"]
    assert pod["affinity"] == values["affinity"] and pod["tolerations"] == values["tolerations"]
    assert pod["nodeSelector"] == {"pool": "ops"} and pod["imagePullSecrets"] == [{"name": "registry"}]
    assert deployment["spec"]["template"]["metadata"]["annotations"] == {"a": "b"}
    assert container["resources"] == values["resources"]
    env = container_env(docs)
    assert env["LOG_LEVEL"] == "debug" and env["TOKEN"] == {"secretKeyRef": {"name": "s", "key": "k"}}
    (sa,) = find(docs, "ServiceAccount")
    assert sa["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": "arn"}


def test_pod_security_policies_are_granted_by_name(helm: Helm, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, {"rbac": {"podSecurityPolicies": ["restricted"]}})

    (role,) = find(docs, "ClusterRole")
    assert {
        "apiGroups": ["policy"],
        "resources": ["podsecuritypolicies"],
        "verbs": ["use"],
        "resourceNames": ["restricted"],
    } in role["rules"]


def test_autoscaling_renders_an_hpa_and_peering(helm: Helm, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, COMBINATIONS["autoscaling-on"])

    (hpa,) = find(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["minReplicas"] == 2 and hpa["spec"]["maxReplicas"] == 3
    assert hpa["spec"]["metrics"] == COMBINATIONS["autoscaling-on"]["autoscaling"]["metrics"]
    (deployment,) = find(docs, "Deployment")
    assert "replicas" not in deployment["spec"]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["args"] == ["--peering", "algorun-pipeline-operator"]
    assert find(docs, "ClusterKopfPeering", "algorun-pipeline-operator")


def test_several_replicas_run_as_peers(helm: Helm, tmp_path: Path) -> None:
    """replicaCount 2: two pods under kopf peering (one active, the other standing by), with the peering CRD and
    object; a cluster that serves the peering kind already keeps its CRD (no second owner)."""
    docs = render(helm, tmp_path, {"replicaCount": 2})
    (deployment,) = find(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["template"]["spec"]["containers"][0]["args"] == ["--peering", "algorun-pipeline-operator"]
    assert find(docs, "ClusterKopfPeering", "algorun-pipeline-operator")
    assert find(docs, "CustomResourceDefinition", "clusterkopfpeerings.kopf.dev")
    served = render(helm, tmp_path, {"replicaCount": 2}, api_versions=("kopf.dev/v1/ClusterKopfPeering",))
    assert not find(served, "CustomResourceDefinition", "clusterkopfpeerings.kopf.dev")
    assert find(served, "ClusterKopfPeering", "algorun-pipeline-operator")


def test_notifications_need_a_url(helm: Helm, tmp_path: Path) -> None:
    env = container_env(render(helm, tmp_path, COMBINATIONS["notifications-on"]))
    values_file = tmp_path / "bad.yaml"
    values_file.write_text("notifications:\n  enabled: true\n")

    failed = helm.run("template", "x", str(CHART), "-f", str(values_file), check=False)

    assert env["NOTIF_URL"] == "http://notify.example.com/hooks"
    assert failed.returncode != 0 and "notifications.url is required" in failed.stderr


def test_notifications_are_signed_with_the_named_secret(helm: Helm, tmp_path: Path) -> None:
    values = {"notifications": {**COMBINATIONS["notifications-on"]["notifications"], "secretName": "notif-key"}}
    env = container_env(render(helm, tmp_path, values))
    assert env["NOTIF_SECRET"] == {"secretKeyRef": {"name": "notif-key", "key": "secret"}}
    assert "NOTIF_SECRET" not in container_env(render(helm, tmp_path, COMBINATIONS["notifications-on"]))


def test_endpoint_tls_names_its_issuer_and_refuses_gateway_routing(helm: Helm, tmp_path: Path) -> None:
    env = container_env(render(helm, tmp_path, COMBINATIONS["endpoint-tls"]))
    assert (env["ENDPOINT_TLS_ISSUER"], env["ENDPOINT_TLS_ISSUER_KIND"], env["ENDPOINT_TLS_ISSUER_GROUP"]) == (
        "internal-ca",
        "Issuer",
        "cert-manager.io",
    )
    assert "ENDPOINT_TLS_ISSUER" not in container_env(render(helm, tmp_path, {}))

    def template_fails(values: dict[str, Any]) -> str:
        values_file = tmp_path / "bad.yaml"
        values_file.write_text(yaml.safe_dump(values))
        failed = helm.run("template", "x", str(CHART), "-f", str(values_file), check=False)
        assert failed.returncode != 0
        return failed.stderr

    assert "endpointTls.issuerName is required" in template_fails({"endpointTls": {"enabled": True}})
    gateway = {**COMBINATIONS["gateway-routing"], **COMBINATIONS["endpoint-tls"]}
    assert "not gateway" in template_fails(gateway)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("replicaCount=two", "replicaCount"),
        ("kafka.tls.enabled=maybe", "kafka/tls/enabled"),
        ("kafka.auth.type=oauth", "kafka/auth/type"),
        ("kafka.auth.type=scram-sha-256", "kafka/auth/type"),
        ("scope.type=galaxy", "scope/type"),
    ],
)
def test_schema_rejects_wrong_values(helm: Helm, setting: str, message: str) -> None:
    failed = helm.run("template", "x", str(CHART), "--set", setting, check=False)

    assert failed.returncode != 0
    assert message in failed.stderr, failed.stderr


@pytest.mark.parametrize("combo", sorted(COMBINATIONS))
def test_rendered_manifests_apply_to_the_api_server(helm: Helm, kube: KubeAPI, tmp_path: Path, combo: str) -> None:
    release_ns = kube.create_namespace("chart")
    kafka_ns = f"kafka-{uuid.uuid4().hex[:6]}"
    values = {**COMBINATIONS[combo], "kafka": {**COMBINATIONS[combo].get("kafka", {}), "namespace": kafka_ns}}
    if combo == "cluster-scope-watch-namespace":
        values["scope"] = {"type": "cluster", "watchNamespace": release_ns}
    docs = render(helm, tmp_path, values, release=f"r{uuid.uuid4().hex[:6]}", namespace=release_ns)
    for namespace in {kafka_ns, "prometheus-operator", *(d["metadata"].get("namespace") for d in docs)} - {None}:
        ensure_namespace(kube, str(namespace))
    discovery = Discovery(kube)
    # CRDs the chart itself installs (kopf peering) must exist before objects of their kinds can be checked.
    for crd in find(docs, "CustomResourceDefinition"):
        kube.install_crds([crd])

    refused = []
    for doc in docs:
        if doc["kind"] == "CustomResourceDefinition":
            continue
        status, body = server_apply(kube, discovery, doc, release_ns, dry_run=True)
        if status not in (200, 201):
            refused.append(f"{doc['kind']}/{doc['metadata']['name']}: HTTP {status} {body.get('message')}")

    assert not refused, "\n".join(refused)


def test_chart_crds_are_accepted_by_the_api_server(kube: KubeAPI) -> None:
    """The chart's crds/ as they are (helm installs them unchanged): a server-side dry-run create each."""
    refused = []
    for path in sorted((CHART / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        status, body = kube.request(
            "PUT",
            f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}?dryRun=All",
            {**crd, "metadata": {**crd["metadata"], "resourceVersion": _resource_version(kube, crd)}},
        )
        if status not in (200, 201):
            refused.append(f"{path.name}: HTTP {status} {body.get('message') if isinstance(body, dict) else body}")

    assert not refused, "\n".join(refused)


def _resource_version(kube: KubeAPI, crd: dict[str, Any]) -> str:
    status, live = kube.request(
        "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}"
    )
    assert status == 200, live
    return str(live["metadata"]["resourceVersion"])
