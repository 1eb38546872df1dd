"""Every example pipeline as pods: the operator installed by the chart deploys it, data goes in through the
endpoint's Service (HTTP and gRPC) and comes out at a webhook receiver outside the cluster (or on its output
topic), the same as `algorun run --until-idle` gives for the same inputs.

The examples are applied as a user adapts them to this cluster (tests.support.e2e.Operator.prepare): the
broker's address, the receiver's address, and for the original sample the algo's image (the original's Go test
algo is not built here; its Python equivalent in the examples image answers the same way, as `--algo` does
locally). data-connector needs Kafka Connect pods, which Strimzi's operator would run: not here (see
tests/support/strimzi.py).
"""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from algorun.api import load_pipeline
from algorun.endpoint.pb import pipeline_endpoint_pb2 as pb
from algorun.endpoint.pb import pipeline_endpoint_pb2_grpc as pb_grpc
from tests.integration.local.harness import run_until_idle
from tests.integration.local.harness import webhook_receiver as local_receiver
from tests.support.e2e import Operator, Receiver, eventually, example_documents, post, read_topic
from tests.support.examples import EXAMPLES

# example -> its endpoint inputs, as `algorun run --input` takes them
CASES = {
    "text-transform": ["text=input.txt"],
    "fan-out-fan-in": [f"orders=input/order-{n}.json" for n in (1, 2, 3)],
    "retry-dead-letter": [f"charges=input/charge-{n}.json" for n in (1, 2, 3)],
}
ORIGINAL_ALGO = {"repository": "algorun/examples", "tag": "1"}
ORIGINAL_ENTRYPOINT = "python3 algos/text_transform.py --port 8080"


def _lines(found: list[dict[str, Any]], prefix: str = "") -> collections.Counter[tuple[str, str]]:
    """(webhook path, line) of every delivered line: a hook may batch several outputs into one delivery."""
    return collections.Counter(
        (str(d["path"]).removeprefix(prefix), line) for d in found for line in str(d["body"]).splitlines()
    )


def _send(operator: Operator, namespace: str, pd: dict[str, Any], inputs: list[str]) -> None:
    """Post each input file to its endpoint path, as `algorun run --input PATH=FILE` does."""
    base = operator.endpoint_url(namespace)
    spec = pd["spec"]
    types = {p["name"]: p.get("contentType", "application/octet-stream") for p in spec["endpoint"]["paths"]}
    for item in inputs:
        path, _, file = item.partition("=")
        url = f"{base}/{spec['deploymentOwner']}/{spec['deploymentName']}/{path}"
        status, answer = post(url, (EXAMPLES / pd["_example"] / file).read_bytes(), types[path])
        assert status in (200, 202), (url, status, answer)


def _local_deliveries(name: str, inputs: list[str], tmp_path: Path) -> list[dict[str, Any]]:
    with local_receiver(tmp_path) as local:
        run = run_until_idle([EXAMPLES / name / "pipeline.yaml"], tmp_path / "state", inputs=inputs)
        assert run.returncode in (0, 1), run.stdout + run.stderr  # 1: something was dead-lettered
        return local.deliveries()


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_runs_as_pods_and_gives_what_algorun_run_gives(
    name: str, operator: Operator, receiver: Receiver, tmp_path: Path
) -> None:
    inputs = CASES[name]
    expected = _lines(_local_deliveries(name, inputs, tmp_path))
    namespace = operator.api.create_namespace(f"e2e-{name[:10]}")
    pd = operator.prepare(name, receiver, hook_prefix=f"/{namespace}")
    began = time.monotonic()
    operator.apply(pd, namespace)
    operator.wait_deployed(namespace, pd["metadata"]["name"])
    print(f"\n{name}: Deployed and Ready {time.monotonic() - began:.1f}s after apply")

    _send(operator, namespace, {**pd, "_example": name}, inputs)
    prefix = f"/{namespace}"
    eventually(
        lambda: sum(_lines(receiver.deliveries(prefix + "/"), prefix).values()) >= sum(expected.values()),
        120,
        f"{sum(expected.values())} output lines at the webhook",
        lambda: (
            f"received {_lines(receiver.deliveries(prefix + '/'), prefix)}\nexpected {expected}\n"
            + operator.describe(namespace, pd["metadata"]["name"], logs=True)
        ),
    )
    assert _lines(receiver.deliveries(prefix + "/"), prefix) == expected
    operator.delete_namespace(namespace)


def test_original_sample_with_its_algo_template(operator: Operator, receiver: Receiver, tmp_path: Path) -> None:
    """The original operator's sample, its Algo given as a cluster-scoped template (algoRef), output on the
    topic named by its template: the input upper-cased (the `transform: toUpper` parameter)."""
    namespace = operator.api.create_namespace("e2e-original")
    docs = example_documents("original-sample")
    pd = operator.prepare("original-sample", receiver)
    algo = next(d for d in docs if d["kind"] == "Algo")
    algo["metadata"]["name"] = f"{algo['metadata']['name']}-{namespace}"
    pd["spec"]["algos"][0]["algoRef"]["name"] = algo["metadata"]["name"]
    for version in algo["spec"]["versions"]:
        version["image"] = {**ORIGINAL_ALGO, "imagePullPolicy": "IfNotPresent"}
        version["entrypoint"] = ORIGINAL_ENTRYPOINT
    operator.apply(pd, namespace, templates=[algo])
    operator.wait_deployed(namespace, pd["metadata"]["name"])

    text = (EXAMPLES / "original-sample" / "input" / "text.txt").read_bytes()
    spec = pd["spec"]
    url = f"{operator.endpoint_url(namespace)}/{spec['deploymentOwner']}/{spec['deploymentName']}/test_http"
    status, answer = post(url, text, "text/any")
    _, services = operator.api.request("GET", f"/api/v1/namespaces/{namespace}/services")
    _, slices = operator.api.request("GET", f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices")
    _, pods = operator.api.request("GET", f"/api/v1/namespaces/{namespace}/pods")
    assert status in (200, 202), (
        url,
        answer,
        [(x["metadata"]["name"], x["spec"]["clusterIP"], x["spec"]["ports"]) for x in services["items"]],
        [(x["metadata"]["name"], x.get("endpoints"), x.get("ports")) for x in slices["items"]],
        [(x["metadata"]["name"], x["status"].get("podIP")) for x in pods["items"]],
        subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True).stdout[-6000:],
    )
    _, topology = load_pipeline([operator.write(pd, tmp_path), operator.write(algo, tmp_path, "algo.yaml")])
    (out,) = [t.name for t in topology.topics.values() if "test-text-transform-http" in t.name]
    (message,) = read_topic(operator.kafka, out, 1)
    assert message.value() == text.upper()
    operator.delete_namespace(namespace)
    operator.api.request("DELETE", f"/apis/algo.run/v1beta1/algos/{algo['metadata']['name']}")


def test_grpc_ingestion_through_the_endpoint_service(operator: Operator, receiver: Receiver) -> None:
    """The endpoint's gRPC port behind the same Service: a Run call is published like an HTTP post."""
    namespace = operator.api.create_namespace("e2e-grpc")
    pd = operator.prepare("text-transform", receiver, hook_prefix=f"/{namespace}")
    operator.apply(pd, namespace)
    operator.wait_deployed(namespace, pd["metadata"]["name"])

    request = pb.RunRequest(
        deploymentOwner=pd["spec"]["deploymentOwner"],
        deploymentName=pd["spec"]["deploymentName"],
        endpointPath="text",
        contentType="text/plain",
        message=b"grpc on a cluster",
        streamOffset=7,
    )
    with grpc.insecure_channel(operator.endpoint_address(namespace, "grpc")) as channel:
        replies = list(pb_grpc.PipelineEndpointStub(channel).Run(iter([request]), timeout=30))
    assert [r.streamOffset for r in replies] == [7]
    found = eventually(
        lambda: (lambda d: d if len(d) >= 2 else None)(receiver.deliveries(f"/{namespace}/")),
        120,
        "both outputs of the gRPC message",
        lambda: operator.describe(namespace, pd["metadata"]["name"]),
    )
    assert "RETSULC A NO CPRG" in {d["body"] for d in found}
    operator.delete_namespace(namespace)


def test_a_dead_letter_on_the_cluster_carries_its_error_and_replay_brings_it_back(
    operator: Operator, receiver: Receiver, tmp_path: Path
) -> None:
    """retry-dead-letter: the declined charge ends in the dead-letter topic with its error headers; `algorun
    replay`, given the runner's config from its ConfigMap (as a user gets it with kubectl), sends it through
    the algo again, which dead-letters it a second time (the card is still declined)."""
    name = "retry-dead-letter"
    namespace = operator.api.create_namespace("e2e-dlq")
    pd = operator.prepare(name, receiver, hook_prefix=f"/{namespace}")
    operator.apply(pd, namespace)
    operator.wait_deployed(namespace, pd["metadata"]["name"])
    _send(operator, namespace, {**pd, "_example": name}, CASES[name])

    _, topology = load_pipeline([operator.write(pd, tmp_path)])
    dead_letter_topic = topology.retry_plan(topology.algos[0]).dead_letter_topic
    (dead,) = read_topic(operator.kafka, dead_letter_topic, 1)
    headers = dict(dead.headers() or [])
    assert json.loads(dead.value())["id"] == "c-3"
    assert b"402" in headers.get("errorMessage", b""), headers

    config = tmp_path / "runner-config.json"
    config.write_text(operator.configmap_value(namespace, "algo.run/algo=shop.charge", "runner-config"))
    bus = f"kafka://{operator.kafka.bootstrap()}"
    replay = subprocess.run(
        [sys.executable, "-m", "algorun.cli.main", "replay", "--config", str(config), "--bus", bus, "--idle", "5"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert replay.returncode == 0, replay.stdout + replay.stderr
    again = read_topic(operator.kafka, dead_letter_topic, 2)
    assert [json.loads(m.value())["id"] for m in again] == ["c-3", "c-3"]
    operator.delete_namespace(namespace)
