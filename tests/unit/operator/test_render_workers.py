"""`workers` of an algo reaches its pod through the runner config the operator renders into the ConfigMap."""

from __future__ import annotations

import json

from algorun.api.documents import check_text
from algorun.api.topology import build_topology
from algorun.operator.render import render
from tests.support.operator_render import find, golden_settings
from tests.support.paths import REPO


def test_the_runner_config_of_an_algo_with_workers_carries_them() -> None:
    text = (REPO / "examples" / "text-transform" / "pipeline.yaml").read_text()
    before = '    - version: "1"\n      index: 1\n      spec:\n        owner: demo\n        name: uppercase'
    assert before in text
    report = check_text(text.replace(before, before.replace("index: 1\n", "index: 1\n      workers: 2\n")))
    assert report.ok, report.problems
    pipeline = report.pipelines()[0]
    objects = render(pipeline, build_topology(pipeline.spec), golden_settings()).objects
    workers = {
        c["metadata"]["name"]: json.loads(c["data"]["runner-config"])["runtime"].get("workers")
        for c in find(objects, "ConfigMap")
        if "runner-config" in c["data"]
    }
    assert [w for name, w in workers.items() if "uppercase" in name] == [2]
    assert {w for name, w in workers.items() if "uppercase" not in name} == {None}


def _pod_with(algo: str, extra: str) -> dict[str, dict[str, object]]:
    """The containers (by name) of `algo`'s Deployment when the text-transform example gives it `extra` lines."""
    text = (REPO / "examples" / "text-transform" / "pipeline.yaml").read_text()
    spec = f"      spec:\n        owner: demo\n        name: {algo}\n"
    assert spec in text
    report = check_text(text.replace(spec, extra + spec))
    assert report.ok, report.problems
    pipeline = report.pipelines()[0]
    objects = render(pipeline, build_topology(pipeline.spec), golden_settings()).objects
    (deployment,) = [d for d in find(objects, "Deployment") if algo in d["metadata"]["name"]]
    return {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}


def test_the_runner_container_requests_a_core_per_worker_unless_the_user_set_cpu() -> None:
    sidecar = _pod_with("uppercase", "      workers: 3\n")  # an http algo: the runner is the algo-runner sidecar
    assert sidecar["algo-runner"]["resources"] == {"requests": {"cpu": "3"}}
    assert "resources" not in sidecar["uppercase"]
    inline = _pod_with("wordcount", "      workers: 2\n      resources: {requests: {memory: 1Gi}}\n")
    assert inline["wordcount"]["resources"] == {"requests": {"cpu": "2", "memory": "1Gi"}}  # Executable: one container
    given = _pod_with("wordcount", "      workers: 2\n      resources: {limits: {cpu: 500m}}\n")
    assert given["wordcount"]["resources"] == {"limits": {"cpu": "500m"}}
    single = _pod_with("uppercase", "")
    assert "resources" not in single["algo-runner"]
