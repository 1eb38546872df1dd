"""Spec changes on a real API server: every example applies, removed algos are pruned, a bad reference is
reported without a crash, switching the Kafka auth type rewrites the user and the pods' env, and endpoint TLS
adds and removes the endpoint's Certificate (and its auth Secret is mounted)."""

from __future__ import annotations

import copy

import pytest

from algorun.operator import kinds
from tests.support.examples import example
from tests.support.kube import KubeAPI
from tests.support.operator_harness import running_operator
from tests.support.paths import EXAMPLES
from tests.support.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def test_every_example_applies(kube: KubeAPI) -> None:
    async with running_operator(kube) as h:
        for path in sorted(EXAMPLES.glob("*/pipeline.yaml")):
            pd, templates = example(path.parent.name, h.namespace)
            for template in templates:
                await h.cluster.client.apply(
                    kinds.resource(kinds.of(template))(template), field_manager="tests", force=True
                )
            await h.apply_pd(pd)
        for path in sorted(EXAMPLES.glob("*/pipeline.yaml")):
            pd, _ = example(path.parent.name, h.namespace)
            name = pd["metadata"]["name"]
            progressing = await eventually(lambda n=name: h.condition(n, "Progressing"), f"{name} status")
            degraded = await h.condition(name, "Degraded")
            assert degraded is not None and degraded["status"] == "False", degraded
            assert progressing["status"] == "True"
        connectors = await h.owned(kinds.KAFKA_CONNECTOR)
        assert (
            connectors["ops-file-copy-file-sink-1"]["spec"]["config"]["topics"]
            == "algorun.ops.file-copy.normalise.1.clean"
        )
        hpa = await h.get(kinds.HPA, "acme-orders-acme-enrich-1")
        assert hpa is not None and hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
        topics = await h.owned(kinds.KAFKA_TOPIC, h.kafka_namespace)
        assert "algorun-shop-payments-charge-1-retry-2s" in topics


async def test_added_algo_is_created_and_removed_algo_is_pruned(kube: KubeAPI) -> None:
    async with running_operator(kube) as h:
        pd, _ = example("text-transform", h.namespace)
        smaller = copy.deepcopy(pd)
        smaller["spec"]["algos"] = [a for a in pd["spec"]["algos"] if a["spec"]["name"] != "reverse"]
        smaller["spec"]["pipes"] = [p for p in pd["spec"]["pipes"] if "reverse" not in p["sourceName"] + p["destName"]]
        await h.apply_pd(smaller)
        await eventually(lambda: h.get(kinds.DEPLOYMENT, "demo-text-transform-demo-wordcount-1"), "wordcount")
        assert await h.get(kinds.DEPLOYMENT, "demo-text-transform-demo-reverse-1") is None

        await h.apply_pd(pd)  # add the reverse algo
        await eventually(lambda: h.get(kinds.DEPLOYMENT, "demo-text-transform-demo-reverse-1"), "reverse added")

        await h.apply_pd(smaller)  # remove it again

        async def pruned() -> bool:
            return await h.get(kinds.DEPLOYMENT, "demo-text-transform-demo-reverse-1") is None

        await eventually(pruned, "the removed algo's Deployment to be pruned")
        assert await h.get(kinds.CONFIG_MAP, "demo-text-transform-demo-reverse-1-config") is None
        assert await h.get(kinds.SERVICE, "demo-text-transform-demo-reverse-1-metrics") is None
        assert await h.get(kinds.DEPLOYMENT, "demo-text-transform-demo-wordcount-1") is not None
        # its output topic holds data: kept unless the user opts in
        topics = await h.owned(kinds.KAFKA_TOPIC, h.kafka_namespace)
        assert "algorun-demo-text-transform-reverse-1-reversed" in topics


async def test_bad_algo_ref_is_degraded_with_an_event_and_recovers(kube: KubeAPI) -> None:
    async with running_operator(kube) as h:
        pd, templates = example("original-sample", h.namespace)
        pd["spec"]["algos"][0]["algoRef"] = {"name": "no-such-algo"}
        await h.apply_pd(pd)
        name = pd["metadata"]["name"]

        async def degraded() -> dict[str, object] | None:
            cond = await h.condition(name, "Degraded")
            return cond if cond and cond["status"] == "True" else None

        cond = await eventually(degraded, "a Degraded condition")
        assert "spec.algos[0].algoRef" in str(cond["message"]) and "no-such-algo" in str(cond["message"])
        assert cond["reason"] == "InvalidSpec"
        assert await h.status_of(name) == "Error"
        events = await h.cluster.list(kinds.EVENT, h.namespace)
        warnings = [e for e in events if e["reason"] == "InvalidSpec" and e["involvedObject"]["name"] == name]
        assert warnings and warnings[0]["type"] == "Warning"
        assert not await h.owned(kinds.DEPLOYMENT), "nothing is created for a spec that cannot be realised"
        # the operator is alive: fixing the reference converges
        pd["spec"]["algos"][0]["algoRef"] = {"name": templates[0]["metadata"]["name"]}
        await h.cluster.client.apply(kinds.resource(kinds.ALGO)(templates[0]), field_manager="tests", force=True)
        await h.apply_pd(pd)
        await eventually(
            lambda: h.get(kinds.DEPLOYMENT, "local-test-deployment-tests-test-text-transform-http-1"), "recovery"
        )
        # the status is written after the objects in the same reconcile: wait for it, not for the Deployment

        async def healed() -> dict[str, object] | None:
            cond = await h.condition(name, "Degraded")
            return cond if cond and cond["status"] == "False" else None

        await eventually(healed, "the Degraded condition to clear")


async def test_auth_type_change_from_tls_to_scram(kube: KubeAPI) -> None:
    namespace, kafka_ns = kube.create_namespace("op"), kube.create_namespace("kafka")
    pd, _ = example("retry-dead-letter", namespace)
    name = pd["metadata"]["name"]
    deployment = "shop-payments-shop-charge-1"
    async with running_operator(kube, namespace=namespace, kafka_namespace=kafka_ns, kafka_auth_type="tls") as h:
        await h.apply_pd(pd)
        user = await eventually(lambda: h.get(kinds.KAFKA_USER, "kafka-shop-payments", kafka_ns), "the KafkaUser")
        assert user["spec"]["authentication"]["type"] == "tls"
        await h.settle()
    async with running_operator(
        kube, namespace=namespace, kafka_namespace=kafka_ns, kafka_auth_type="scram-sha-512"
    ) as h:
        await h.cluster.create(
            kinds.SECRET,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "kafka-shop-payments", "namespace": kafka_ns},
                "data": {"password": "czNjcjN0"},
            },
        )

        async def scram_user() -> bool:
            user = await h.get(kinds.KAFKA_USER, "kafka-shop-payments", kafka_ns)
            return bool(user and user["spec"]["authentication"]["type"] == "scram-sha-512")

        h.operator.reconciler.request(namespace, name)
        await eventually(scram_user, "the KafkaUser switched to scram-sha-512")

        async def scram_env() -> dict[str, object] | None:
            obj = await h.get(kinds.DEPLOYMENT, deployment)
            runner = obj["spec"]["template"]["spec"]["containers"][0] if obj else {}
            env = {e["name"]: e.get("value", e.get("valueFrom")) for e in runner.get("env", [])}
            return env if env.get("KAFKA_AUTH_TYPE") == "scram-sha-512" else None

        env = await eventually(scram_env, "the runner env switched to scram")
        assert env["KAFKA_AUTH_USERNAME"] == "kafka-shop-payments"
        assert env["KAFKA_AUTH_PASSWORD"] == {"secretKeyRef": {"name": "shop-payments-kafka-user", "key": "password"}}
        assert "KAFKA_AUTH_TLS_USER_LOCATION" not in env
        obj = await h.get(kinds.DEPLOYMENT, deployment)
        assert obj is not None
        runner = obj["spec"]["template"]["spec"]["containers"][0]
        assert all("kafka-user" not in m["mountPath"] for m in runner["volumeMounts"])
        assert all(v["name"] != "kafka-certs" for v in obj["spec"]["template"]["spec"]["volumes"])
        copy_ = await eventually(lambda: h.get(kinds.SECRET, "shop-payments-kafka-user"), "the password secret copy")
        assert copy_["data"] == {"password": "czNjcjN0"}


async def test_endpoint_tls_and_auth_are_applied_and_the_certificate_pruned_when_tls_is_off(kube: KubeAPI) -> None:
    """Against cert-manager's own CRD, which drops fields it does not know: the stored spec is the whole spec."""
    namespace, kafka_ns = kube.create_namespace("op"), kube.create_namespace("kafka")
    pd, _ = example("text-transform", namespace)
    pd["spec"]["endpoint"]["auth"] = {"secretName": "demo-clients"}
    service = "demo-text-transform-endpoint"
    cert_name, mapping = f"{service}-tls", f"{service}-http"
    tls = {"endpoint_tls_issuer": "internal-ca", "endpoint_tls_issuer_kind": "Issuer"}
    async with running_operator(kube, namespace=namespace, kafka_namespace=kafka_ns, **tls) as h:
        await h.apply_pd(pd)
        stored = await eventually(lambda: h.get(kinds.CERTIFICATE, cert_name), "the endpoint's Certificate")
        await h.settle()  # the rest of the reconcile: the Certificate is applied before the Mapping
        assert stored["spec"] == {
            "secretName": cert_name,
            "commonName": f"{service}.{namespace}.svc",
            "dnsNames": [
                service,
                f"{service}.{namespace}",
                f"{service}.{namespace}.svc",
                f"{service}.{namespace}.svc.cluster.local",
            ],
            "usages": ["server auth", "digital signature", "key encipherment"],
            "privateKey": {"rotationPolicy": "Always"},
            "issuerRef": {"name": "internal-ca", "kind": "Issuer", "group": "cert-manager.io"},
        }
        route = await h.get(kinds.MAPPING, mapping)
        assert route is not None and route["spec"]["service"].startswith("https://")
        workload = await h.get(kinds.DEPLOYMENT, service)
        assert workload is not None
        volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}
        assert volumes["endpoint-tls"]["secret"]["secretName"] == cert_name
        assert volumes["endpoint-auth"]["secret"]["secretName"] == "demo-clients"
        issued = {  # what cert-manager writes for the Certificate (no owner reference, by default)
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "metadata": {
                "name": cert_name,
                "namespace": namespace,
                "annotations": {"cert-manager.io/certificate-name": cert_name},
            },
            "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"},
        }
        await h.cluster.create(kinds.SECRET, issued)
        await h.settle()
    async with running_operator(kube, namespace=namespace, kafka_namespace=kafka_ns) as h:
        h.operator.reconciler.request(namespace, pd["metadata"]["name"])

        async def pruned() -> bool:
            return await h.get(kinds.CERTIFICATE, cert_name) is None

        await eventually(pruned, "the Certificate pruned once endpoint TLS is off")
        await h.settle()
        assert await h.get(kinds.SECRET, cert_name) is None  # its private key goes with it
        route = await h.get(kinds.MAPPING, mapping)
        assert route is not None and not route["spec"]["service"].startswith("https://")
