"""What render produces for the examples: the object inventory with the original's defects fixed."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from algorun.api.documents import check_text
from algorun.api.topology import build_topology
from algorun.operator.render import ClusterFacts, render
from tests.support.operator_render import find, golden_settings, load, rendered
from tests.support.paths import REPO


def _container(deployment: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name)


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_original_sample_objects_and_names() -> None:
    objects = rendered("original-sample").objects
    kinds = sorted({o["kind"] for o in objects})
    assert kinds == ["ConfigMap", "Deployment", "KafkaTopic", "KafkaUser", "Mapping", "Service"]
    topics = {t["spec"]["topicName"]: t for t in find(objects, "KafkaTopic")}
    endpoint_topic = topics["algorun.local.test-deployment.endpoint.0.test_http"]
    assert endpoint_topic["metadata"]["name"] == "algorun-local-test-deployment-endpoint-0-test-http"
    assert endpoint_topic["metadata"]["namespace"] == "kafka"
    assert endpoint_topic["spec"]["partitions"] == 3
    assert endpoint_topic["metadata"]["labels"]["strimzi.io/cluster"] == "kafka"
    assert "algorun.local.test-deployment.test-text-transform-http.1.dlq" in topics
    mappings = {m["metadata"]["labels"]["algo.run/mapping-protocol"]: m for m in find(objects, "Mapping")}
    assert mappings["http"]["apiVersion"] == "getambassador.io/v3alpha1"
    assert mappings["http"]["spec"]["prefix"] == "/run/http/local/test-deployment/"
    assert mappings["grpc"]["spec"]["prefix"] == "/run/grpc/local/test-deployment/"
    assert mappings["grpc"]["spec"]["grpc"] is True
    assert mappings["http"]["spec"]["service"] == "local-test-deployment-endpoint.algorun:18080"


def test_common_labels_and_no_owner_reference_offline() -> None:
    for obj in rendered("original-sample").objects:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/part-of"] == "algo.run"
        assert labels["app.kubernetes.io/managed-by"] == "pipeline-operator"
        assert labels["algo.run/pipeline-deployment"] == "local.test-deployment"
        assert labels["algo.run/pipeline"] == "local.test-pipeline"
        assert "ownerReferences" not in obj["metadata"]


def test_owner_references_only_in_the_same_namespace() -> None:
    from tests.support.operator_render import load

    pipeline, topology = load("original-sample")
    pipeline.metadata["uid"] = "1234"
    objects = render(pipeline, topology, golden_settings(), ClusterFacts()).objects
    for obj in objects:
        same = obj["metadata"]["namespace"] == "algorun"
        assert ("ownerReferences" in obj["metadata"]) == same, obj["metadata"]["name"]


def test_http_algo_has_runner_sidecar_with_mounts_env_and_probes() -> None:
    objects = rendered("original-sample").objects
    deployment = find(objects, "Deployment", "local-test-deployment-tests-test-text-transform-http-1")[0]
    runner = _container(deployment, "algo-runner")
    assert runner["command"] == ["algorun", "runner", "--config", "/algo-runner/algo-runner-config.json"]
    env = _env(runner)
    assert env["KAFKA_BROKERS"] == "kafka-kafka-bootstrap.kafka:9093"
    assert env["KAFKA_TLS_CA_LOCATION"] == "/etc/ssl/certs/kafka-ca.crt"
    assert env["KAFKA_AUTH_TLS_USER_LOCATION"] == "/etc/ssl/certs/kafka-user.crt"
    mounts = {m["mountPath"] for m in runner["volumeMounts"]}
    assert {"/algo-runner", "/input", "/output", "/etc/ssl/certs/kafka-ca.crt"} <= mounts
    assert runner["readinessProbe"]["httpGet"] == {"path": "/health", "port": 10080}
    algo = _container(deployment, "test-text-transform-http")
    assert algo["command"] == ["/opt/algo-test-go/algo-test-go"]
    assert algo["args"] == ["--input-type", "http"]
    assert deployment["spec"]["replicas"] == 1
    config = find(objects, "ConfigMap", "local-test-deployment-tests-test-text-transform-http-1-config")[0]
    runner_config = json.loads(config["data"]["runner-config"])
    assert runner_config["inputs"][0]["topics"][0]["topic"] == "algorun.local.test-deployment.endpoint.0.test_http"
    assert "algo.run/algo-version" not in deployment["spec"]["selector"]["matchLabels"]


def test_executable_algo_runs_the_copied_runner_build() -> None:
    deployment = find(rendered("fan-out-fan-in").objects, "Deployment", "acme-orders-acme-score-1")[0]
    pod = deployment["spec"]["template"]["spec"]
    init = pod["initContainers"][0]
    assert init["command"] == ["cp", "-R", "/opt/algorun/algo-runner/.", "/algo-runner/"]
    algo = pod["containers"][0]
    assert len(pod["containers"]) == 1
    assert algo["image"] == "algorun/examples:1"
    assert algo["command"] == [
        "/algo-runner/bin/algo-runner",
        "--config",
        "/algo-runner-config/algo-runner-config.json",
    ]
    assert {"/algo-runner", "/algo-runner-config"} <= {m["mountPath"] for m in algo["volumeMounts"]}


def test_resources_and_autoscaling() -> None:
    objects = rendered("fan-out-fan-in").objects
    enrich = find(objects, "Deployment", "acme-orders-acme-enrich-1")[0]
    algo = _container(enrich, "enrich")
    assert algo["resources"] == {
        "limits": {"cpu": "1", "memory": "512Mi"},
        "requests": {"cpu": "250m", "memory": "128Mi"},
    }
    assert "replicas" not in enrich["spec"], "an autoscaled Deployment leaves replicas to its HPA"
    hpa = find(objects, "HorizontalPodAutoscaler", "acme-orders-acme-enrich-1")[0]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["metadata"]["namespace"] == enrich["metadata"]["namespace"]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "acme-orders-acme-enrich-1",
    }
    assert hpa["spec"]["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}


def test_retry_and_dead_letter_topics_and_acls() -> None:
    objects = rendered("retry-dead-letter").objects
    topics = {t["spec"]["topicName"] for t in find(objects, "KafkaTopic")}
    assert {
        "algorun.shop.payments.charge.1.retry.500ms",
        "algorun.shop.payments.charge.1.retry.2s",
        "algorun.shop.payments.charge.1.failed",
        "algorun.shop.payments.hook.dlq",
    } <= topics
    user = find(objects, "KafkaUser")[0]
    acl_topics = {
        a["resource"]["name"] for a in user["spec"]["authorization"]["acls"] if a["resource"]["type"] == "topic"
    }
    assert topics <= acl_topics
    groups = {a["resource"]["name"] for a in user["spec"]["authorization"]["acls"] if a["resource"]["type"] == "group"}
    assert groups == {"algorun-shop-payments-shop-charge-1", "algorun-shop-payments-hook"}


def test_hook_config_is_mounted() -> None:
    objects = rendered("retry-dead-letter").objects
    hook = find(objects, "Deployment", "shop-payments-hook")[0]
    container = _container(hook, "hook")
    assert container["command"] == ["algorun", "hook", "--config", "/hook-config/hook-config.json"]
    assert {"name": "hook-config", "mountPath": "/hook-config", "readOnly": True} in container["volumeMounts"]
    volume = hook["spec"]["template"]["spec"]["volumes"][0]
    assert volume["configMap"]["name"] == "shop-payments-hook-config"


def test_every_component_with_metrics_has_a_service_its_service_monitor_selects() -> None:
    """The chart's ServiceMonitors select Services by part-of/component labels and scrape the port named "metrics"
    (charts/pipeline-operator/templates/servicemonitors.yaml); the hook runner had no Service, so its metrics were
    never scraped."""
    objects = rendered("retry-dead-letter").objects
    for component in ("endpoint", "hook", "algo"):
        deployments = [
            d
            for d in find(objects, "Deployment")
            if d["metadata"]["labels"]["app.kubernetes.io/component"] == component
        ]
        services = [
            s for s in find(objects, "Service") if s["metadata"]["labels"]["app.kubernetes.io/component"] == component
        ]
        assert deployments and services, component
        for service in services:
            assert service["metadata"]["labels"]["app.kubernetes.io/part-of"] == "algo.run"
            port = next(p for p in service["spec"]["ports"] if p["name"] == "metrics")
            selected = [
                d
                for d in deployments
                if service["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()
            ]
            assert selected, f"{component}: {service['metadata']['name']} selects no pod"
            container_ports = {
                p["containerPort"]: p.get("name")
                for c in selected[0]["spec"]["template"]["spec"]["containers"]
                for p in c.get("ports", [])
            }
            target = port["targetPort"]
            assert target in container_ports or target in container_ports.values(), (component, target)


def test_scram_auth_uses_password_secret_and_no_certificate_mounts() -> None:
    objects = rendered("original-sample", kafka_auth_type="scram-sha-512").objects
    user = find(objects, "KafkaUser")[0]
    assert user["spec"]["authentication"] == {"type": "scram-sha-512"}
    deployment = find(objects, "Deployment", "local-test-deployment-endpoint")[0]
    env = _env(_container(deployment, "endpoint"))
    assert env["KAFKA_AUTH_TYPE"] == "scram-sha-512"
    assert env["KAFKA_AUTH_USERNAME"] == user["metadata"]["name"]
    assert env["KAFKA_AUTH_PASSWORD"] == {
        "secretKeyRef": {"name": "local-test-deployment-kafka-user", "key": "password"}
    }
    mounts = {m["mountPath"] for m in _container(deployment, "endpoint")["volumeMounts"]}
    assert "/etc/ssl/certs/kafka-user.crt" not in mounts
    assert "/etc/ssl/certs/kafka-ca.crt" in mounts


def test_secret_copies_need_their_source() -> None:
    facts = ClusterFacts(ca_secret_data={"ca.crt": "Q0E="}, user_secret_data=None)
    result = rendered("original-sample", facts)
    secrets = find(result.objects, "Secret")
    assert [s["metadata"]["name"] for s in secrets] == ["local-test-deployment-kafka-ca"]
    assert secrets[0]["data"] == {"ca.crt": "Q0E="}
    assert any("user secret" in note for note in result.notes)


def test_data_connectors() -> None:
    objects = rendered("data-connector").objects
    connects = {c["metadata"]["name"]: c for c in find(objects, "KafkaConnect")}
    groups = {c["spec"]["groupId"] for c in connects.values()}
    assert len(groups) == 2, "each Connect cluster has its own group id"
    connectors = {c["metadata"]["name"]: c for c in find(objects, "KafkaConnector")}
    source = connectors["ops-file-copy-file-source-1"]
    sink = connectors["ops-file-copy-file-sink-1"]
    assert source["spec"]["config"]["topic"] == "algorun.ops.file-copy.file-source.1.lines"
    assert sink["spec"]["config"]["topics"] == "algorun.ops.file-copy.normalise.1.clean"
    assert sink["metadata"]["labels"]["strimzi.io/cluster"] == "ops-file-copy-file-sink-1"
    assert (
        connects["ops-file-copy-file-sink-1"]["metadata"]["annotations"]["strimzi.io/use-connector-resources"] == "true"
    )


def test_gateway_routing_alternative() -> None:
    objects = rendered(
        "original-sample", endpoint_routing="gateway", gateway_name="public", gateway_namespace="gw"
    ).objects
    assert not find(objects, "Mapping")
    routes = find(objects, "HTTPRoute")
    assert len(routes) == 2
    http = next(r for r in routes if r["metadata"]["labels"]["algo.run/mapping-protocol"] == "http")
    rule = http["spec"]["rules"][0]
    assert rule["matches"][0]["path"] == {"type": "PathPrefix", "value": "/run/http/local/test-deployment/"}
    assert http["spec"]["parentRefs"] == [{"name": "public", "namespace": "gw"}]


def test_endpoint_with_disk_wal_is_a_statefulset_and_its_hpa_targets_it() -> None:
    text = """
apiVersion: algo.run/v1beta1
kind: PipelineDeployment
metadata: {name: p, namespace: ns}
spec:
  deploymentOwner: o
  deploymentName: p
  kafkaBrokers: k:9092
  endpoint:
    autoscaling: {enabled: true, minReplicas: 1, maxReplicas: 3}
    producer: {wal: {mode: fallback, size: 2Gi}}
    server: {http: {listen: ":9000"}}
    paths: [{name: in}]
"""
    report = check_text(text)
    assert report.ok, report.problems
    pipeline = report.pipelines()[0]
    objects = render(pipeline, build_topology(pipeline.spec), golden_settings()).objects
    sts = find(objects, "StatefulSet")[0]
    claim = sts["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert not find(objects, "Deployment")
    hpa = find(objects, "HorizontalPodAutoscaler")[0]
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"
    service = find(objects, "Service")[0]
    assert service["spec"]["ports"][0]["port"] == 9000


def test_a_pipeline_without_brokers_gets_the_strimzi_clusters_bootstrap_service() -> None:
    """No `kafkaBrokers`: every component is given the configured cluster's bootstrap Service (TLS port with
    TLS on, plain without), not an empty broker list that fails in each pod."""
    from tests.support.operator_render import load

    pipeline, topology = load("data-connector")
    spec = pipeline.spec.model_copy(update={"kafka_brokers": None})
    pipeline = pipeline.model_copy(update={"spec": spec})
    topology = build_topology(spec)
    facts = ClusterFacts(offline=True)
    for tls, expected in ((True, "east-kafka-bootstrap.streams:9093"), (False, "east-kafka-bootstrap.streams:9092")):
        settings = golden_settings(kafka_tls=tls, kafka_cluster_name="east", kafka_namespace="streams")
        objects = render(pipeline, topology, settings, facts).objects
        [deployment] = [d for d in find(objects, "Deployment") if _env(d["spec"]["template"]["spec"]["containers"][-1])]
        assert _env(deployment["spec"]["template"]["spec"]["containers"][-1])["KAFKA_BROKERS"] == expected
        assert {c["spec"]["bootstrapServers"] for c in find(objects, "KafkaConnect")} == {expected}
        data = [item for cm in find(objects, "ConfigMap") for item in cm["data"].items()]
        configs = [json.loads(v) for k, v in data if not k.endswith(".yml")]  # the components' JSON configs
        brokers = [c["kafka"]["brokers"] for c in configs if "kafka" in c]  # a string, or the endpoint's list
        assert brokers and {b if isinstance(b, str) else ",".join(b) for b in brokers} == {expected}


def test_each_connect_cluster_exports_metrics_where_the_chart_scrapes_them() -> None:
    """Strimzi's JMX exporter on (metricsConfig, rules in a rendered ConfigMap) and a metrics Service for its pods
    labelled as the chart's data-connector ServiceMonitor selects (component dataconnector, port `metrics`)."""
    objects = rendered("data-connector").objects
    for connect in find(objects, "KafkaConnect"):
        ref = connect["spec"]["metricsConfig"]["valueFrom"]["configMapKeyRef"]
        [config] = find(objects, "ConfigMap", ref["name"])
        assert "kafka.connect<type=" in config["data"][ref["key"]]
        [service] = find(objects, "Service", ref["name"])
        assert service["metadata"]["labels"]["app.kubernetes.io/component"] == "dataconnector"
        assert service["metadata"]["labels"]["app.kubernetes.io/part-of"] == "algo.run"
        assert service["spec"]["selector"] == {
            "strimzi.io/cluster": connect["metadata"]["name"],
            "strimzi.io/kind": "KafkaConnect",
        }
        assert service["spec"]["ports"] == [{"name": "metrics", "port": 9404, "targetPort": 9404, "protocol": "TCP"}]


def test_endpoint_tls_issues_a_certificate_for_the_service_and_serves_it() -> None:
    objects = rendered("original-sample", endpoint_tls_issuer="internal-ca").objects
    (service,) = find(objects, "Service", "local-test-deployment-endpoint")
    (cert,) = find(objects, "Certificate")
    ns = service["metadata"]["namespace"]
    assert cert["metadata"]["name"] == cert["spec"]["secretName"] == "local-test-deployment-endpoint-tls"
    assert cert["spec"]["dnsNames"] == [
        "local-test-deployment-endpoint",
        f"local-test-deployment-endpoint.{ns}",
        f"local-test-deployment-endpoint.{ns}.svc",
        f"local-test-deployment-endpoint.{ns}.svc.cluster.local",
    ]
    assert cert["spec"]["issuerRef"] == {"name": "internal-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    assert "server auth" in cert["spec"]["usages"]

    (workload,) = find(objects, "Deployment", "local-test-deployment-endpoint")
    pod = workload["spec"]["template"]["spec"]
    container = _container(workload, "endpoint")
    env = _env(container)
    mount = next(m for m in container["volumeMounts"] if m["name"] == "endpoint-tls")
    assert "subPath" not in mount  # a subPath mount never sees a renewal
    assert env["ALGORUN_ENDPOINT_TLS_CERT"] == f"{mount['mountPath']}/tls.crt"
    assert env["ALGORUN_ENDPOINT_TLS_KEY"] == f"{mount['mountPath']}/tls.key"
    volume = next(v for v in pod["volumes"] if v["name"] == "endpoint-tls")
    assert volume["secret"]["secretName"] == cert["spec"]["secretName"]
    # The key is readable by the image's group only, which the pod's fsGroup gives the (non-root) endpoint.
    assert volume["secret"]["defaultMode"] == 0o440
    dockerfile = (REPO / "images" / "Dockerfile").read_text()
    group = pod["securityContext"]["fsGroup"]
    assert f"--gid {group}" in dockerfile and f"USER {group}:{group}" in dockerfile
    # Probes stay on the plain monitoring port; the gRPC port no longer claims clear-text HTTP/2.
    assert container["readinessProbe"]["httpGet"]["port"] == "metrics"
    grpc_port = next(p for p in service["spec"]["ports"] if p["name"] == "grpc")
    assert "appProtocol" not in grpc_port
    services = {
        m["metadata"]["labels"]["algo.run/mapping-protocol"]: m["spec"]["service"] for m in find(objects, "Mapping")
    }
    assert services == {
        "http": f"https://local-test-deployment-endpoint.{ns}:18080",
        "grpc": f"https://local-test-deployment-endpoint.{ns}:18282",
    }


def test_without_an_issuer_the_endpoint_serves_plain_text() -> None:
    objects = rendered("original-sample").objects
    assert not find(objects, "Certificate")
    (workload,) = find(objects, "Deployment", "local-test-deployment-endpoint")
    assert "ALGORUN_ENDPOINT_TLS_CERT" not in _env(_container(workload, "endpoint"))
    assert all(not m["spec"]["service"].startswith("https://") for m in find(objects, "Mapping"))


def test_endpoint_auth_mounts_the_secret_where_the_endpoint_reads_its_credentials(tmp_path: Path) -> None:
    """The contract between render and the endpoint: the files the kubelet makes of the Secret's keys are the
    ones `build_settings` reads."""
    from algorun.api import configs
    from algorun.api.pipeline import EndpointAuth
    from algorun.endpoint.settings import build_settings

    pipeline, topology = load("original-sample")
    endpoint = pipeline.spec.endpoint.model_copy(
        update={"auth": EndpointAuth(secret_name="orders-clients", api_keys_key="keys")}
    )
    spec = pipeline.spec.model_copy(update={"endpoint": endpoint})
    pipeline, topology = pipeline.model_copy(update={"spec": spec}), replace(topology, spec=spec)
    objects = render(pipeline, topology, golden_settings(), ClusterFacts(offline=True)).objects

    (workload,) = find(objects, "Deployment", "local-test-deployment-endpoint")
    container = _container(workload, "endpoint")
    volume = next(v for v in workload["spec"]["template"]["spec"]["volumes"] if v["name"] == "endpoint-auth")
    assert volume["secret"]["secretName"] == "orders-clients"
    assert volume["secret"]["optional"] is True  # a missing key is no file; the endpoint refuses to start open
    mount = next(m for m in container["volumeMounts"] if m["name"] == "endpoint-auth")
    assert "subPath" not in mount  # a subPath mount never sees a rotation
    env = _env(container)
    assert env["ALGORUN_ENDPOINT_CREDENTIALS_DIR"] == mount["mountPath"]

    secret_data = {"bearerTokens": "token-1\n", "keys": "key-1\n", "unrelated": "x"}
    for item in volume["secret"]["items"]:  # what the kubelet writes into the mount
        if item["key"] in secret_data:
            (tmp_path / item["path"]).write_text(secret_data[item["key"]])
    settings = build_settings(configs.endpoint_config(topology), {"ALGORUN_ENDPOINT_CREDENTIALS_DIR": str(tmp_path)})
    assert (settings.credentials.bearer_tokens, settings.credentials.api_keys) == ({"token-1"}, {"key-1"})
