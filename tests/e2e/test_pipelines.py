"""Every example pipeline as pods: the operator installed by the chart deploys it, data goes in through the
endpoint's Service (HTTP and gRPC) and comes out at a webhook receiver outside the cluster (or on its output
topic), the same as `algorun run --until-idle` gives for the same inputs.

The examples are applied as a user adapts them to this cluster (tests.support.e2e.Operator.prepare): the
broker's address, the receiver's address, and for the original sample the algo's image (the original's Go test
algo is not built here; its Python equivalent in the examples image answers the same way, as `--algo` does
locally). data-connector, whose Connect clusters Strimzi's stand-in runs, is in test_connectors.py.
"""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from algorun.api import load_pipeline
from algorun.endpoint.pb import pipeline_endpoint_pb2 as pb
from algorun.endpoint.pb import pipeline_endpoint_pb2_grpc as pb_grpc
from tests.support.e2e import Operator, Receiver, eventually, example_documents, post, read_topic, topic_messages
from tests.support.local_mode import run_until_idle
from tests.support.local_mode import webhook_receiver as local_receiver
from tests.support.paths import EXAMPLES

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
        run = run_until_idle([local.examples / name / "pipeline.yaml"], tmp_path / "state", inputs=inputs)
        assert run.returncode in (0, 1), run.stdout + run.stderr  # 1: something was dead-lettered
        return local.deliveries()


@dataclass
class Deployed:
    """One example applied in a namespace of its own."""

    example: str
    namespace: str
    pd: dict[str, Any]
    templates: list[dict[str, Any]]

    @property
    def name(self) -> str:
        return str(self.pd["metadata"]["name"])

    @property
    def prefix(self) -> str:
        return f"/{self.namespace}"


def _original_sample(operator: Operator, receiver: Receiver, namespace: str) -> Deployed:
    """The original's sample with its Algo as a cluster-scoped template (algoRef), under a name of this test's."""
    pd = operator.prepare("original-sample", receiver)
    algo = next(d for d in example_documents("original-sample") if d["kind"] == "Algo")
    algo["metadata"]["name"] = f"{algo['metadata']['name']}-{namespace}"
    pd["spec"]["algos"][0]["algoRef"]["name"] = algo["metadata"]["name"]
    for version in algo["spec"]["versions"]:
        version["image"] = {**ORIGINAL_ALGO, "imagePullPolicy": "IfNotPresent"}
        version["entrypoint"] = ORIGINAL_ENTRYPOINT
    return Deployed("original-sample", namespace, pd, [algo])


@pytest.fixture(scope="module")
def deployed(operator: Operator, receiver: Receiver) -> Iterator[dict[str, Deployed]]:
    """Every example applied at once, each in its own namespace, and waited on together: Deployed, Ready and
    every Deployment available. Namespaces and templates are deleted after the module."""
    examples: dict[str, Deployed] = {}
    for name in (*CASES, "original-sample"):
        namespace = operator.api.create_namespace(f"e2e-{name[:10]}")
        if name == "original-sample":
            examples[name] = _original_sample(operator, receiver, namespace)
        else:
            examples[name] = Deployed(
                name, namespace, operator.prepare(name, receiver, hook_prefix=f"/{namespace}"), []
            )
    began = time.monotonic()
    for d in examples.values():
        operator.apply(d.pd, d.namespace, templates=d.templates)
    for d in examples.values():
        operator.wait_deployed(d.namespace, d.name)
        print(f"\n{d.example}: Deployed and Ready within {time.monotonic() - began:.1f}s of applying all examples")
    try:
        yield examples
    finally:
        for d in examples.values():
            operator.delete_namespace(d.namespace)
            for template in d.templates:
                operator.api.request("DELETE", f"/apis/algo.run/v1beta1/algos/{template['metadata']['name']}")


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_runs_as_pods_and_gives_what_algorun_run_gives(
    name: str, operator: Operator, receiver: Receiver, deployed: dict[str, Deployed], tmp_path: Path
) -> None:
    example = deployed[name]
    expected = _lines(_local_deliveries(name, CASES[name], tmp_path))
    _send(operator, example.namespace, {**example.pd, "_example": name}, CASES[name])
    prefix = example.prefix
    eventually(
        lambda: sum(_lines(receiver.deliveries(prefix + "/"), prefix).values()) >= sum(expected.values()),
        120,
        f"{sum(expected.values())} output lines at the webhook",
        lambda: (
            f"received {_lines(receiver.deliveries(prefix + '/'), prefix)}\nexpected {expected}\n"
            + operator.describe(example.namespace, example.name, logs=True)
        ),
    )
    assert _lines(receiver.deliveries(prefix + "/"), prefix) == expected


def test_original_sample_with_its_algo_template(
    operator: Operator, deployed: dict[str, Deployed], tmp_path: Path
) -> None:
    """The original operator's sample, its Algo given as a cluster-scoped template (algoRef), output on the
    topic named by its template: the input upper-cased (the `transform: toUpper` parameter)."""
    example = deployed["original-sample"]
    text = (EXAMPLES / "original-sample" / "input" / "text.txt").read_bytes()
    spec = example.pd["spec"]
    url = f"{operator.endpoint_url(example.namespace)}/{spec['deploymentOwner']}/{spec['deploymentName']}/test_http"
    status, answer = post(url, text, "text/any")
    assert status in (200, 202), (url, answer, operator.routing(example.namespace))
    files = [operator.write(example.pd, tmp_path), operator.write(example.templates[0], tmp_path, "algo.yaml")]
    _, topology = load_pipeline(files)
    (out,) = [t.name for t in topology.topics.values() if "test-text-transform-http" in t.name]
    (message,) = read_topic(operator.kafka, out, 1)
    assert message.value() == text.upper()


def test_grpc_ingestion_through_the_endpoint_service(
    operator: Operator, receiver: Receiver, deployed: dict[str, Deployed]
) -> None:
    """The endpoint's gRPC port behind the same Service: a Run call is published like an HTTP post."""
    example = deployed["text-transform"]
    trace = uuid.uuid4().hex
    request = pb.RunRequest(
        deploymentOwner=example.pd["spec"]["deploymentOwner"],
        deploymentName=example.pd["spec"]["deploymentName"],
        endpointPath="text",
        traceID=trace,
        contentType="text/plain",
        message=b"grpc on a cluster",
        streamOffset=7,
    )
    with grpc.insecure_channel(operator.endpoint_address(example.namespace, "grpc")) as channel:
        replies = list(pb_grpc.PipelineEndpointStub(channel).Run(iter([request]), timeout=30))
    assert [r.streamOffset for r in replies] == [7]
    found = eventually(
        lambda: (lambda d: d if len(d) >= 2 else None)(
            [d for d in receiver.deliveries(example.prefix + "/") if d["traceID"] == trace]
        ),
        120,
        "both outputs of the gRPC message",
        lambda: operator.describe(example.namespace, example.name),
    )
    assert "RETSULC A NO CPRG" in {d["body"] for d in found}


def test_a_dead_letter_on_the_cluster_carries_its_error_and_replay_brings_it_back(
    operator: Operator, deployed: dict[str, Deployed], tmp_path: Path
) -> None:
    """retry-dead-letter: a declined charge ends in the dead-letter topic with its error headers; `algorun
    replay --trace-id`, given the runner's config from its ConfigMap (as a user gets it with kubectl), sends it
    through the algo again, which dead-letters it a second time (the card is still declined)."""
    example = deployed["retry-dead-letter"]
    charge = {"id": f"c-{uuid.uuid4().hex[:8]}", "amount": 12, "card": "declined"}
    spec = example.pd["spec"]
    url = f"{operator.endpoint_url(example.namespace)}/{spec['deploymentOwner']}/{spec['deploymentName']}/charges"
    status, answer = post(url, json.dumps(charge).encode(), "application/json")
    assert status in (200, 202), answer
    trace = answer["traceID"]

    _, topology = load_pipeline([operator.write(example.pd, tmp_path)])
    dead_letter_topic = topology.retry_plan(topology.algos[0]).dead_letter_topic

    def dead_letters() -> list[Any]:
        return [m for m in topic_messages(operator.kafka, dead_letter_topic) if _trace(m) == trace]

    (dead,) = eventually(
        dead_letters, 90, "the dead letter", lambda: operator.describe(example.namespace, example.name)
    )
    headers = dict(dead.headers() or [])
    assert json.loads(dead.value())["id"] == charge["id"]
    assert b"402" in headers.get("errorMessage", b""), headers

    config = tmp_path / "runner-config.json"
    config.write_text(operator.configmap_value(example.namespace, "algo.run/algo=shop.charge", "runner-config"))
    bus = f"kafka://{operator.kafka.bootstrap()}"
    replay = subprocess.run(
        [
            sys.executable,
            "-m",
            "algorun.cli.main",
            "replay",
            "--config",
            str(config),
            "--bus",
            bus,
            "--trace-id",
            trace,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert replay.returncode == 0, replay.stdout + replay.stderr
    again = eventually(
        lambda: (lambda found: found if len(found) >= 2 else None)(dead_letters()),
        90,
        "the replayed message dead-lettered again",
        lambda: replay.stdout + replay.stderr,
    )
    assert [json.loads(m.value())["id"] for m in again] == [charge["id"], charge["id"]]


def _trace(message: Any) -> str:
    headers = dict(message.headers() or [])
    return (headers.get("traceID") or b"").decode()
