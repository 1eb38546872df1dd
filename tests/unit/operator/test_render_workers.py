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
