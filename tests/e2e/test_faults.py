"""Faults on a real cluster, each with its figure in the test output (issue 22).

Every test runs text-transform (endpoint path `text`; two outputs per input at the webhook: the word count and the
reversed upper-cased text) in its own namespace, under its own deploymentName (so its own topics, consumer groups
and KafkaTopic objects) and its own webhook path, so the tests share the broker and the receiver without seeing
each other's messages. Delivery is at-least-once: a duplicate is counted and allowed, a lost output fails.

1. A runner pod deleted mid-stream (grace 0): all N outputs arrive.
2. The operator killed (SIGKILL) in the middle of a reconcile: the pipeline still converges (Deployed, Ready)
   and every object it owns exists exactly once, with no extra rollout.
3. A spec change (an algo's replicas and another algo's parameter) rolls the pods; what is sent during the roll
   all arrives.
4. Deleting the PipelineDeployment removes every object it owns, and keeps its topics: the KafkaTopic objects
   (Strimzi would delete a topic with its KafkaTopic) and the topics in the broker.
"""

from __future__ import annotations

import collections
import copy
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.chart_install import NAMESPACE as OPERATOR_NAMESPACE
from tests.support.chart_install import RELEASE
from tests.support.e2e import PD_PATH, Operator, Receiver
from tests.support.e2e import eventually as poll
from tests.support.faults import (
    DERIVED,
    Stream,
    Tally,
    any_object,
    container_pids,
    delete_namespace,
    kill,
    owned_objects,
    pods,
    ready_pods,
    report,
)

OWNER = "demo"
UPPERCASE = "algo.run/algo=demo.uppercase"
WORDCOUNT = "algo.run/algo=demo.wordcount"
OPERATOR_PODS = f"app.kubernetes.io/name=pipeline-operator,app.kubernetes.io/instance={RELEASE}"


@pytest.fixture
def namespace(operator: Operator, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of the test's own, deleted at the end (the operator's finalizer cleans up what is left)."""
    name = operator.api.create_namespace("e2e-" + request.node.name.removeprefix("test_")[:20].replace("_", "-"))
    try:
        yield name
    finally:
        delete_namespace(operator.api, name)


def text_transform(operator: Operator, receiver: Receiver, name: str) -> dict[str, Any]:
    """text-transform as deploymentName `name`, its webhook at the receiver's path `/faults/<name>`."""
    pd = operator.prepare("text-transform", receiver)
    pd["metadata"]["name"] = name
    pd["spec"]["deploymentName"] = name
    for hook in pd["spec"]["eventHook"]["webHooks"]:
        hook["webHookUrl"] = f"{receiver.base_url}/faults/{name}"
    return pd


def deploy(operator: Operator, namespace: str, pd: dict[str, Any]) -> float:
    """Apply and wait until Deployed and Ready; the seconds it took."""
    began = time.monotonic()
    operator.apply(pd, namespace)
    operator.wait_deployed(namespace, pd["metadata"]["name"])
    return time.monotonic() - began


def stream_to(request: pytest.FixtureRequest, operator: Operator, namespace: str, name: str, **kwargs: Any) -> Stream:
    """A started stream to the pipeline's endpoint path `text`, aborted when the test ends (a failed test leaves
    no sender behind)."""
    stream = Stream(f"{operator.endpoint_url(namespace)}/{OWNER}/{name}/text", tag=name, **kwargs)
    request.addfinalizer(stream.abort)
    return stream.start()


def tally(receiver: Receiver, name: str, sent: dict[str, str]) -> Tally:
    return Tally.of(sent, receiver.deliveries(f"/faults/{name}"))


def wait_complete(operator: Operator, receiver: Receiver, namespace: str, name: str, sent: dict[str, str]) -> Tally:
    """Every output of every sent message arrived (duplicates allowed); fails naming what is missing."""
    return poll(
        lambda: (lambda t: t if t.complete else None)(tally(receiver, name, sent)),
        120,
        "every output at the webhook",
        lambda: f"{tally(receiver, name, sent).summary()}\n{operator.describe(namespace, name, logs=True)}",
    )


def test_runner_pod_deleted_mid_stream_loses_nothing(
    operator: Operator, receiver: Receiver, namespace: str, request: pytest.FixtureRequest
) -> None:
    """The uppercase runner's pod (every message passes it) is deleted with grace 0 while a paced stream flows:
    the pod object goes at once and its replacement starts while the runner gets SIGTERM and the kubelet's
    minimum of 2 s. The rule: an input offset is committed only after its outputs are acknowledged, so whatever
    the deleted runner had read but not finished is read again by its replacement: every output arrives, some
    maybe twice (counted, allowed)."""
    name = "faults-runner-kill"
    ready_in = deploy(operator, namespace, text_transform(operator, receiver, name))
    stream = stream_to(request, operator, namespace, name, rate=25, limit=300)
    poll(
        lambda: tally(receiver, name, stream.snapshot()).inputs_done >= 25,
        60,
        "the stream flowing through the pipeline",
        lambda: operator.describe(namespace, name),
    )
    victim = ready_pods(operator.api, namespace, UPPERCASE)[0]
    status, body = operator.api.request(
        "DELETE", f"/api/v1/namespaces/{namespace}/pods/{victim['metadata']['name']}?gracePeriodSeconds=0"
    )
    assert status == 200, body
    deleted_at = time.monotonic()
    sent_at_kill = stream.count
    done_at_kill = tally(receiver, name, stream.snapshot()).inputs_done
    poll(
        lambda: [
            p
            for p in ready_pods(operator.api, namespace, UPPERCASE)
            if p["metadata"]["uid"] != victim["metadata"]["uid"]
        ],
        120,
        "the replacement uppercase runner Ready",
        lambda: operator.describe(namespace, name),
    )
    replaced_in = time.monotonic() - deleted_at
    sent = stream.join()
    assert sent_at_kill < len(sent), "the pod was deleted after the stream ended: not mid-stream"
    result = wait_complete(operator, receiver, namespace, name, sent)
    recovered_in = time.monotonic() - deleted_at
    assert not result.wrong, result.summary()
    report(
        request.config,
        "runner pod deleted mid-stream",
        f"N={len(sent)} inputs ({2 * len(sent)} outputs); pod deleted (grace 0) after {sent_at_kill} sent and "
        f"{done_at_kill} complete; replacement Ready in {replaced_in:.1f}s, all outputs in {recovered_in:.1f}s; "
        f"lost {len(result.lost)}, duplicates {result.duplicates}, client retries {stream.retries} "
        f"(deployed in {ready_in:.1f}s)",
    )


def test_operator_killed_during_reconcile_converges_without_duplicates(
    operator: Operator,
    receiver: Receiver,
    namespace: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The operator's process is SIGKILLed as soon as the first object of a new pipeline appears (a pod deletion,
    even with grace 0, leaves it 2 s after SIGTERM: enough to finish the whole reconcile, so nothing would be cut
    short); the kubelet restarts it. The rule: the reconcile is declarative (the full desired set, server-side
    apply, deterministic names, prune by label), so the restarted operator finishes the job from whatever the
    killed one left: Deployed and Ready, each owned object exactly once (the set `algorun render` gives, nothing
    more), one ReplicaSet per Deployment (the restart rewrote no pod template)."""
    name = "faults-operator-kill"
    pd = text_transform(operator, receiver, name)
    label = f"{OWNER}.{name}"
    kafka_namespace = str((operator.values.get("kafka") or {}).get("namespace", "kafka"))
    expected = rendered(operator, pd, namespace, tmp_path, monkeypatch)
    (victim,) = ready_pods(operator.api, OPERATOR_NAMESPACE, OPERATOR_PODS)
    (container,) = victim["status"]["containerStatuses"]
    pids = container_pids(victim, container["name"])
    began = time.monotonic()
    operator.apply(pd, namespace)
    poll(
        lambda: any_object(operator.api, namespace, label, kafka_namespace),
        60,
        "the operator's first object",
        lambda: operator.describe(namespace, name),
        interval=0.02,
    )
    kill(pids)
    at_kill = [k for k in owned_objects(operator.api, namespace, label, kafka_namespace) if k[0] not in DERIVED]
    operator.wait_deployed(namespace, name)
    converged_in = time.monotonic() - began

    def restarted_once() -> bool:
        # The status was written by the restarted operator; its readiness probe may lag behind that.
        (pod,) = pods(operator.api, OPERATOR_NAMESPACE, OPERATOR_PODS)
        (state,) = pod["status"]["containerStatuses"]
        assert pod["metadata"]["uid"] == victim["metadata"]["uid"], "the operator pod was replaced, not restarted"
        assert state["restartCount"] - container["restartCount"] == 1, f"restarted more than once: {state}"
        return bool(state.get("ready"))

    poll(restarted_once, 60, "the restarted operator Ready")

    live = owned_objects(operator.api, namespace, label, kafka_namespace)
    counts = collections.Counter(live)
    twice = sorted(k for k, n in counts.items() if n > 1)
    applied = sorted(k for k in counts if k[0] not in DERIVED)
    by_kind = collections.Counter(plural for plural, _ in live)
    deployments = operator.api.request("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments")[1]["items"]
    want_pods = sum(d["spec"]["replicas"] for d in deployments)
    assert not twice, f"objects listed more than once: {twice}"
    assert applied == expected, (
        f"missing {sorted(set(expected) - set(applied))}, extra {sorted(set(applied) - set(expected))}"
    )
    assert by_kind["replicasets"] == len(deployments), f"an extra rollout after the restart: {live}"
    assert by_kind["pods"] == want_pods, f"pods: {by_kind['pods']}, want {want_pods}: {live}"
    report(
        request.config,
        "operator killed during a reconcile",
        f"SIGKILLed with {len(at_kill)}/{len(expected)} objects written, restarted by the kubelet; Deployed and "
        f"Ready {converged_in:.1f}s after the apply; {len(applied)} owned objects, each once "
        "(0 duplicates, 0 missing, 0 extra); "
        f"{by_kind['replicasets']} ReplicaSets for {len(deployments)} Deployments, {by_kind['pods']} pods",
    )


def rendered(
    operator: Operator, pd: dict[str, Any], namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> list[tuple[str, str]]:
    """(plural, namespace/name) of what the operator applies for `pd`: the same renderer, offline, with the
    settings the operator runs with (its Deployment's environment, as the chart set it)."""
    from algorun.api.documents import load_pipeline
    from algorun.cli.operator_commands import render_offline
    from algorun.operator.settings import OperatorOptions

    status, body = operator.api.request(
        "GET", f"/apis/apps/v1/namespaces/{OPERATOR_NAMESPACE}/deployments?labelSelector={OPERATOR_PODS}"
    )
    assert status == 200, body
    (deployment,) = body["items"]
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        for env in container.get("env") or []:
            if "value" in env:
                monkeypatch.setenv(env["name"], env["value"])
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(pd))
    pipeline, topology = load_pipeline([path])
    objects = [d for d in yaml.safe_load_all(render_offline(pipeline, topology, OperatorOptions(), namespace)) if d]
    return sorted(
        (d["kind"].lower() + "s", f"{d['metadata'].get('namespace', '')}/{d['metadata']['name']}") for d in objects
    )


def test_spec_change_rolls_pods_and_loses_nothing(
    operator: Operator, receiver: Receiver, namespace: str, request: pytest.FixtureRequest
) -> None:
    """While a paced stream flows, the spec changes: uppercase 1 -> 2 replicas, wordcount gets a parameter (a new
    config, so its pods roll: the new pod starts, then the old one drains). The rule: a scale or a roll hands
    partitions over without losing what was read (cooperative rebalance, commit after output), and the stream
    runs until the roll is over, so messages are sent before, during and after it: every output arrives."""
    name = "faults-spec-change"
    pd = text_transform(operator, receiver, name)
    ready_in = deploy(operator, namespace, pd)
    deployments = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    wordcount_generation = _deployment(operator, namespace, WORDCOUNT)["metadata"]["generation"]
    old_pods = {
        p["metadata"]["uid"]
        for p in pods(operator.api, namespace, UPPERCASE) + pods(operator.api, namespace, WORDCOUNT)
    }
    stream = stream_to(request, operator, namespace, name, rate=20, limit=3000, minimum=100)
    poll(
        lambda: tally(receiver, name, stream.snapshot()).inputs_done >= 20,
        60,
        "the stream flowing through the pipeline",
        lambda: operator.describe(namespace, name),
    )

    changed = copy.deepcopy(pd)
    for algo in changed["spec"]["algos"]:
        if algo["spec"]["name"] == "uppercase":
            algo["replicas"] = 2
        if algo["spec"]["name"] == "wordcount":
            algo["parameters"] = [{"name": "--rolled", "value": "yes"}]
    began = time.monotonic()
    sent_before = stream.count
    operator.apply(changed, namespace)

    def rolled() -> bool:
        wordcount = _deployment(operator, namespace, WORDCOUNT)
        uppercase = _deployment(operator, namespace, UPPERCASE)
        if wordcount["metadata"]["generation"] == wordcount_generation or not _settled(wordcount):
            return False
        if uppercase["spec"]["replicas"] != 2 or not _settled(uppercase):
            return False
        live = pods(operator.api, namespace, UPPERCASE) + pods(operator.api, namespace, WORDCOUNT)
        new = [p for p in live if p["metadata"]["uid"] not in old_pods]
        kept = [p for p in live if p["metadata"]["uid"] in old_pods]
        # The old wordcount pod gone (drained and exited), one old uppercase pod kept (a scale, not a roll).
        return len(kept) == 1 and len(new) == 2 and len(ready_pods(operator.api, namespace, UPPERCASE)) == 2

    poll(
        rolled,
        180,
        "the roll to finish",
        lambda: f"{operator.api.request('GET', deployments)[1]}\n{operator.describe(namespace, name)}",
    )
    rolled_in = time.monotonic() - began
    sent_during = stream.count - sent_before
    stream.finish()
    sent = stream.join()
    operator.wait_deployed(namespace, name)
    config = _config_of(operator, namespace, WORDCOUNT)
    assert "--rolled" in config, f"the parameter is not in the new runner's config: {config}"
    result = wait_complete(operator, receiver, namespace, name, sent)
    assert not result.wrong, result.summary()
    report(
        request.config,
        "spec change (uppercase replicas 1->2, wordcount parameter)",
        f"roll done in {rolled_in:.1f}s with {sent_during} messages sent during it ({len(sent)} in all, "
        f"{sent_before} before); lost {len(result.lost)}, duplicates {result.duplicates}, client retries "
        f"{stream.retries} (deployed in {ready_in:.1f}s)",
    )


def _deployment(operator: Operator, namespace: str, selector: str) -> dict[str, Any]:
    status, body = operator.api.request(
        "GET", f"/apis/apps/v1/namespaces/{namespace}/deployments?labelSelector={selector}"
    )
    assert status == 200, body
    (found,) = body["items"]
    return dict(found)


def _settled(deployment: dict[str, Any]) -> bool:
    """The Deployment's controller saw its latest spec and every replica is updated and available, none extra."""
    status = deployment.get("status") or {}
    want = deployment["spec"]["replicas"]
    return bool(
        status.get("observedGeneration") == deployment["metadata"]["generation"]
        and status.get("updatedReplicas") == want
        and status.get("availableReplicas") == want
        and status.get("replicas") == want
    )


def _config_of(operator: Operator, namespace: str, selector: str) -> str:
    status, body = operator.api.request("GET", f"/api/v1/namespaces/{namespace}/configmaps?labelSelector={selector}")
    assert status == 200, body
    return str([item.get("data") for item in body["items"]])


def test_deleting_the_pipeline_removes_what_it_owns_and_keeps_topics(
    operator: Operator, receiver: Receiver, namespace: str, request: pytest.FixtureRequest
) -> None:
    """The rule: deleting a PipelineDeployment removes every object it owns (the operator's finalizer deletes them
    by label, Kubernetes' garbage collector their ReplicaSets, pods and EndpointSlices), and keeps its topics (their
    data is not the operator's to destroy): the KafkaTopic objects stay, so Strimzi keeps the topics, and the
    topics are still in the broker."""
    from confluent_kafka.admin import AdminClient

    name = "faults-delete"
    pd = text_transform(operator, receiver, name)
    label = f"{OWNER}.{name}"
    kafka_namespace = str((operator.values.get("kafka") or {}).get("namespace", "kafka"))
    ready_in = deploy(operator, namespace, pd)
    stream = stream_to(request, operator, namespace, name, rate=50, limit=10)
    wait_complete(operator, receiver, namespace, name, stream.join())
    before = owned_objects(operator.api, namespace, label, kafka_namespace)
    topics_before = [k for k in before if k[0] == "kafkatopics"]
    assert topics_before and len(before) > len(topics_before), before

    began = time.monotonic()
    status, body = operator.api.request("DELETE", PD_PATH.format(ns=namespace) + f"/{name}")
    assert status in (200, 202), body
    poll(
        lambda: operator.api.request("GET", PD_PATH.format(ns=namespace) + f"/{name}")[0] == 404,
        60,
        "the PipelineDeployment gone (its finalizer done)",
        lambda: owned_objects(operator.api, namespace, label, kafka_namespace),
    )
    pd_gone_in = time.monotonic() - began
    last_seen: dict[tuple[str, str], float] = {}

    def all_gone() -> bool:
        left = [k for k in owned_objects(operator.api, namespace, label, kafka_namespace) if k[0] != "kafkatopics"]
        last_seen.update({k: time.monotonic() - began for k in left})
        return not left

    poll(all_gone, 90, "every owned object gone", lambda: sorted(last_seen))
    all_gone_in = time.monotonic() - began
    slowest = max(last_seen, key=lambda k: last_seen[k]) if last_seen else None
    after = owned_objects(operator.api, namespace, label, kafka_namespace)
    assert after == topics_before, f"KafkaTopics before {topics_before}, after {after}"

    version = operator.api.request("GET", "/apis/kafka.strimzi.io")[1]["preferredVersion"]["version"]
    topic_names = []
    for _, key in topics_before:
        ns, obj = key.split("/")
        item = operator.api.request("GET", f"/apis/kafka.strimzi.io/{version}/namespaces/{ns}/kafkatopics/{obj}")[1]
        topic_names.append(item["spec"].get("topicName") or obj)
    admin = AdminClient(operator.kafka.client_config("PLAINTEXT"))
    in_broker = set(admin.list_topics(timeout=10).topics)
    missing = sorted(set(topic_names) - in_broker)
    assert not missing, f"topics gone from the broker: {missing}"
    endpoint_topic = next(t for t in topic_names if t.endswith(".endpoint.text"))
    held = messages_in(operator, endpoint_topic)
    assert held >= 10, f"{endpoint_topic} holds {held} messages, 10 were sent"
    kinds = collections.Counter(plural for plural, _ in before if plural != "kafkatopics")
    report(
        request.config,
        "PipelineDeployment deleted",
        f"{len(before) - len(topics_before)} owned objects ({dict(sorted(kinds.items()))}) removed: the resource "
        f"gone in {pd_gone_in:.1f}s, every object in {all_gone_in:.1f}s "
        f"(the last: {slowest}); kept {len(topics_before)} KafkaTopics and "
        f"{len(topic_names) - len(missing)}/{len(topic_names)} topics in the broker ({endpoint_topic} still "
        f"holds its {held} messages; deployed in {ready_in:.1f}s)",
    )


def messages_in(operator: Operator, topic: str) -> int:
    """How many messages the broker holds for `topic` (high minus low watermark, over its partitions)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(operator.kafka.client_config("PLAINTEXT", **{"group.id": "faults-watermarks"}))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        total = 0
        for partition in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            total += high - low
        return total
    finally:
        consumer.close()
