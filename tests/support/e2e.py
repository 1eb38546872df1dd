"""What the e2e tests do on the cluster as a user would: apply a pipeline, wait for it, send data, read results.

Every wait is on a condition with a timeout, and a timeout says what was seen last (the PipelineDeployment's
status, the pods' states), so a red e2e test explains itself.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tests.support.cluster import Cluster
from tests.support.kafka import KafkaBroker
from tests.support.paths import EXAMPLES
from tests.support.procs import ManagedProcess, free_port, wait_for

T = TypeVar("T")
# The broker address every example names (Strimzi's bootstrap Service for a cluster named `kafka`). The e2e
# cluster gives it to the test-bed broker's PLAINTEXT listener (name_broker), so examples keep it as written.
EXAMPLES_BOOTSTRAP = ("kafka", "kafka-kafka-bootstrap", 9093)
PD_PATH = "/apis/algo.run/v1beta1/namespaces/{ns}/pipelinedeployments"


def eventually(
    check: Callable[[], T | None],
    timeout: float,
    what: str,
    seen: Callable[[], Any] = lambda: "",
    interval: float = 0.5,
) -> T:
    """Poll `check` every `interval` seconds until it returns something truthy; on timeout fail with `what` and
    what `seen` shows. (Catching the operator in the middle of a reconcile needs a faster poll than waiting for a
    rollout.)"""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; seen:\n{seen()}")
        time.sleep(interval)  # the poll interval of a condition wait


@dataclass
class Receiver:
    """The examples' webhook receiver (examples/webhook_receiver.py) on the address pods reach the host at."""

    process: ManagedProcess
    output: Path
    base_url: str

    def deliveries(self, path_prefix: str = "") -> list[dict[str, Any]]:
        lines = self.output.read_text().splitlines() if self.output.exists() else []
        found = [json.loads(line) for line in lines if line.startswith("{")]
        return [d for d in found if d["path"].startswith(path_prefix)]


@contextmanager
def webhook_receiver(tmp: Path, host: str) -> Iterator[Receiver]:
    output = tmp / "received.jsonl"
    port = free_port()
    receiver = EXAMPLES / "webhook_receiver.py"
    argv = [sys.executable, "-u", str(receiver), "--host", host, "--port", str(port)]
    process = ManagedProcess("webhook-receiver", argv, output)
    try:
        wait_for(lambda: "receiver listening" in output.read_text(), timeout=15, what="the receiver", proc=process)
        yield Receiver(process, output, f"http://{host}:{port}")
    finally:
        process.stop(grace=2)


def name_broker(cluster: Cluster, kafka: KafkaBroker) -> str:
    """Give the broker's PLAINTEXT listener the examples' bootstrap name in the cluster; returns the name."""
    from tests.support.cluster_dns import host_service

    namespace, service, port = EXAMPLES_BOOTSTRAP
    host_service(cluster.api, namespace, service, port, cluster.host_address, kafka.ports["PLAINTEXT"])
    return f"{service}.{namespace}:{port}"


def example_documents(name: str) -> list[dict[str, Any]]:
    return [d for p in sorted((EXAMPLES / name).glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]


@dataclass
class Operator:
    """The installed operator, the cluster it runs on and the broker its pipelines use."""

    cluster: Cluster
    kafka: KafkaBroker
    values: dict[str, Any]

    @property
    def api(self) -> Any:
        return self.cluster.api

    def prepare(
        self, name: str, receiver: Receiver, *, hook_prefix: str = "", listener: str | None = None
    ) -> dict[str, Any]:
        """An example's PipelineDeployment as a user adapts it to this cluster: its webhooks go to `receiver`
        (their paths under `hook_prefix`), and its deploymentName is made unique, so its topics and consumer
        groups are its own on the shared broker. Its brokers stay as written (the cluster's DNS name for the
        test-bed broker) unless `listener` names one of the broker's listeners to use by address."""
        docs = example_documents(name)
        pd = copy.deepcopy(next(d for d in docs if d["kind"] == "PipelineDeployment"))
        spec = pd["spec"]
        if listener is not None:
            spec["kafkaBrokers"] = self.kafka.bootstrap(listener)
        spec.pop("deploymentNamespace", None)
        pd["metadata"].pop("namespace", None)
        spec["deploymentName"] = f"{spec['deploymentName']}-{uuid.uuid4().hex[:6]}"
        for hook in (spec.get("eventHook") or {}).get("webHooks") or []:
            path = "/" + hook["webHookUrl"].split("://", 1)[1].split("/", 1)[1]
            hook["webHookUrl"] = receiver.base_url + hook_prefix + path
        return pd

    @staticmethod
    def write(doc: dict[str, Any], folder: Path, file: str = "pipeline.yaml") -> Path:
        """`doc` as a YAML file (for `algorun` commands and load_pipeline)."""
        path = folder / file
        path.write_text(yaml.safe_dump(doc))
        return path

    def delete_namespace(self, namespace: str) -> None:
        """Delete a test's namespace (the operator's finalizer lets its PipelineDeployment go); not waited on."""
        self.api.request("DELETE", f"/api/v1/namespaces/{namespace}")

    def configmap_value(self, namespace: str, selector: str, key: str) -> str:
        """`kubectl get configmap -l SELECTOR -o jsonpath={.data.KEY}`: one ConfigMap's value."""
        query = urllib.parse.quote(selector)
        _, found = self.api.request("GET", f"/api/v1/namespaces/{namespace}/configmaps?labelSelector={query}")
        values = [c["data"][key] for c in found["items"] if key in (c.get("data") or {})]
        assert len(values) == 1, f"{len(values)} ConfigMaps with {selector} and {key} in {namespace}"
        return str(values[0])

    def apply(self, pd: dict[str, Any], namespace: str, templates: list[dict[str, Any]] | None = None) -> None:
        """Create the templates (cluster-scoped Algos, DataConnectors) and the PipelineDeployment, as
        `kubectl apply -f` would (server-side apply, field manager `kubectl`)."""
        for doc in templates or []:
            self._server_apply(doc, None)
        self._server_apply(pd, namespace)

    def _server_apply(self, doc: dict[str, Any], namespace: str | None) -> None:
        api_version, kind = doc["apiVersion"], doc["kind"]
        plural = kind.lower() + "s"
        name = doc["metadata"]["name"]
        prefix = f"/apis/{api_version}" + (f"/namespaces/{namespace}" if namespace else "")
        body = {**doc, "metadata": {**doc["metadata"], **({"namespace": namespace} if namespace else {})}}
        status, answer = self.api.request(
            "PATCH",
            f"{prefix}/{plural}/{name}?fieldManager=kubectl&force=true",
            body,
            content_type="application/apply-patch+yaml",
        )
        assert status in (200, 201), f"applying {kind}/{name}: HTTP {status}: {answer}"

    def pipeline(self, namespace: str, name: str) -> dict[str, Any]:
        status, body = self.api.request("GET", PD_PATH.format(ns=namespace) + f"/{name}")
        assert status == 200, f"PipelineDeployment {namespace}/{name}: HTTP {status}: {body}"
        return dict(body)

    def describe(self, namespace: str, name: str, *, logs: bool = False) -> str:
        """The pipeline's status and its pods' states (with `logs`, every container's last lines; else only the
        unready ones'), for failure messages."""
        pd = self.pipeline(namespace, name).get("status") or {}
        _, pods = self.api.request("GET", f"/api/v1/namespaces/{namespace}/pods")
        lines = [f"status: {json.dumps({k: pd.get(k) for k in ('status', 'conditions')}, indent=1)}"]
        for pod in (pods or {}).get("items", []):
            states = [
                f"{c['name']}: ready={c.get('ready')} restarts={c.get('restartCount')} {list(c.get('state', {}))}"
                f" {next(iter(c.get('state', {}).values()), {}).get('reason', '')}"
                for c in (pod.get("status") or {}).get("containerStatuses") or []
            ]
            lines.append(f"pod {pod['metadata']['name']} {pod['status'].get('phase')}: {'; '.join(states)}")
            for c in (pod.get("status") or {}).get("containerStatuses") or []:
                if logs or not c.get("ready"):
                    log_path = f"/api/v1/namespaces/{namespace}/pods/{pod['metadata']['name']}/log"
                    query = f"?container={c['name']}&tailLines=15" + ("&previous=true" if c.get("restartCount") else "")
                    _, text = self.api.request("GET", log_path + query)
                    lines.append(f"  last lines of {c['name']}:\n    " + str(text).replace("\n", "\n    "))
        return "\n".join(lines)

    def wait_deployed(self, namespace: str, name: str, timeout: float = 240.0) -> dict[str, Any]:
        """Wait until the PipelineDeployment is Deployed with Ready=True and every Deployment is available."""

        def deployed() -> dict[str, Any] | None:
            pd = self.pipeline(namespace, name)
            status = pd.get("status") or {}
            ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or [])
            if status.get("status") != "Deployed" or not ready:
                return None
            _, deployments = self.api.request("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments")
            for d in deployments["items"]:
                want = d["spec"].get("replicas", 1)
                if (d.get("status") or {}).get("availableReplicas", 0) < want:
                    return None
            return pd

        return eventually(
            deployed, timeout, f"{namespace}/{name} Deployed and Ready", lambda: self.describe(namespace, name)
        )

    def endpoint_address(self, namespace: str, port_name: str = "http") -> str:
        """HOST:PORT of the endpoint's Service as a client on this machine reaches it (its ClusterIP, through
        kube-proxy)."""
        _, services = self.api.request(
            "GET", f"/api/v1/namespaces/{namespace}/services?labelSelector=app.kubernetes.io/component%3Dendpoint"
        )
        service = services["items"][0]
        port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == port_name)
        return f"{service['spec']['clusterIP']}:{port}"

    def routing(self, namespace: str) -> str:
        """The namespace's Services, EndpointSlices and pod addresses, and the host's NAT rules, for a failure
        message about a Service that did not answer as expected."""
        _, services = self.api.request("GET", f"/api/v1/namespaces/{namespace}/services")
        _, slices = self.api.request("GET", f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices")
        _, pods = self.api.request("GET", f"/api/v1/namespaces/{namespace}/pods")
        nat = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True, check=False).stdout
        return "\n".join(
            [
                *(
                    f"service {x['metadata']['name']} {x['spec']['clusterIP']} {x['spec']['ports']}"
                    for x in services["items"]
                ),
                *(f"slice {x['metadata']['name']} {x.get('endpoints')}" for x in slices["items"]),
                *(f"pod {x['metadata']['name']} {x['status'].get('podIP')}" for x in pods["items"]),
                nat[-6000:],
            ]
        )

    def endpoint_url(self, namespace: str) -> str:
        return f"http://{self.endpoint_address(namespace)}"


def topic_messages(kafka: KafkaBroker, topic: str, timeout: float = 30.0) -> list[Any]:
    """Every message now in `topic` (confluent-kafka Messages), read by partition up to the end offsets seen at
    the start: no consumer group, so nothing waits for a group to form and no offset is committed."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(kafka.client_config() | {"group.id": "e2e-reader", "enable.auto.commit": False})
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return []
        ends: dict[int, int] = {}
        starts = []
        for partition in metadata.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            if high > low:
                ends[partition] = high
                starts.append(TopicPartition(topic, partition, low))
        consumer.assign(starts)
        found: list[Any] = []
        deadline = time.monotonic() + timeout
        while ends and time.monotonic() < deadline:
            for message in consumer.consume(100, 0.5):
                if message.error():
                    continue
                found.append(message)
                if message.offset() + 1 >= ends.get(message.partition(), 0):
                    ends.pop(message.partition(), None)
        return found
    finally:
        consumer.close()


def read_topic(kafka: KafkaBroker, topic: str, expect: int, timeout: float = 60.0) -> list[Any]:
    """The messages of `topic`, once at least `expect` are there; fails naming how many there were."""
    deadline = time.monotonic() + timeout
    while True:
        found = topic_messages(kafka, topic)
        if len(found) >= expect:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(found)} of {expect} messages on {topic} after {timeout:.0f}s")
        time.sleep(0.5)  # the poll interval of a condition wait


def post(url: str, body: bytes, content_type: str, timeout: float = 30.0) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
