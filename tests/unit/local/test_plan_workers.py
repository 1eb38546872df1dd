"""`workers` in a pipeline YAML reaches the runner `algorun run` starts, through the runner config it writes."""

from __future__ import annotations

import itertools
from pathlib import Path

from algorun.api import check_text
from algorun.api.topology import build_topology
from algorun.local.plan import build_plan

EXAMPLES = Path(__file__).parents[3] / "examples"


def test_workers_of_an_algo_reach_its_runner_config_and_are_validated() -> None:
    text = (EXAMPLES / "text-transform" / "pipeline.yaml").read_text()
    before = '    - version: "1"\n      index: 1\n      spec:\n        owner: demo\n        name: uppercase'
    assert before in text
    report = check_text(text.replace(before, before.replace("index: 1\n", "index: 1\n      workers: 2\n")))
    assert report.ok, report.problems
    ports = itertools.count(20000)
    plan = build_plan(
        build_topology(report.pipelines()[0].spec),
        state_dir=Path("/state"),
        workdir=Path("/pipeline"),
        bus_env={"ALGORUN_BUS": "local:///state/log.db"},
        allocate=lambda: next(ports),
    )
    workers = {path.name: config.get("runtime", {}).get("workers") for path, config in plan.config_files.items()}
    assert workers["runner-demo-uppercase-1-1.json"] == 2
    assert {w for name, w in workers.items() if "uppercase" not in name} == {None}
    too_many = check_text(text.replace(before, before.replace("index: 1\n", "index: 1\n      workers: 65\n")))
    assert not too_many.ok and "workers" in str(too_many.problems)
