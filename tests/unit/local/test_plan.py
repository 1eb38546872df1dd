"""What `algorun run` would start for each example, computed without starting anything."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from algorun.api import SpecError, check_files, check_text, load_pipeline
from algorun.api.topology import build_topology
from algorun.local.plan import Kind, PlanError, build_plan
from tests.support.paths import EXAMPLES


def plan_for(topology: object, **kwargs: object) -> object:
    ports = itertools.count(20000)
    return build_plan(
        topology,  # type: ignore[arg-type]
        state_dir=Path("/state"),
        workdir=Path("/pipeline"),
        bus_env={"ALGORUN_BUS": "local:///state/log.db"},
        allocate=lambda: next(ports),
        **kwargs,  # type: ignore[arg-type]
    )


def test_text_transform_processes() -> None:
    _, topology = load_pipeline([EXAMPLES / "text-transform" / "pipeline.yaml"])
    plan = plan_for(topology)
    names = [p.name for p in plan.processes]  # type: ignore[attr-defined]
    assert names == [
        "endpoint",
        "algo demo/uppercase:1[1]",
        "runner demo/uppercase:1[1]",
        "runner demo/wordcount:1[1]",
        "runner demo/reverse:1[1]",
        "hook",
    ]
    algo = next(p for p in plan.processes if p.kind == Kind.ALGO)  # type: ignore[attr-defined]
    assert algo.argv == ["python3", "algos/uppercase_server.py", "--port", "18901"] and algo.cwd == Path("/pipeline")
    assert plan.endpoint_urls == ["http://127.0.0.1:18080/demo/text-transform/text"]  # type: ignore[attr-defined]
    runner = next(p for p in plan.processes if p.name == "runner demo/wordcount:1[1]")  # type: ignore[attr-defined]
    assert runner.env["ALGORUN_BUS"] == "local:///state/log.db" and "--health-port" in runner.argv
    assert "algorun.demo.text-transform.wordcount.1.dlq" in plan.topics  # type: ignore[attr-defined]
    assert {g.component for g in plan.groups} == {  # type: ignore[attr-defined]
        "demo/uppercase:1[1]",
        "demo/wordcount:1[1]",
        "demo/reverse:1[1]",
        "EventHook",
    }


def test_one_runner_per_replica_and_algo_override() -> None:
    text = (EXAMPLES / "text-transform" / "pipeline.yaml").read_text()
    before = '    - version: "1"\n      index: 1\n      spec:\n        owner: demo\n        name: uppercase'
    text = text.replace(before, before.replace("index: 1\n", "index: 1\n      replicas: 3\n"))
    report = check_text(text)
    assert report.ok, report.problems
    topology = build_topology(report.pipelines()[0].spec)
    plan = plan_for(topology, algo_overrides={"uppercase": "./my-server --fast"})
    runners = [p for p in plan.processes if p.name.startswith("runner demo/uppercase")]  # type: ignore[attr-defined]
    assert len(runners) == 3 and len({p.ready_url for p in runners}) == 3
    algo = next(p for p in plan.processes if p.kind == Kind.ALGO)  # type: ignore[attr-defined]
    assert algo.argv == ["./my-server", "--fast"]


def test_unknown_algo_override_is_refused() -> None:
    _, topology = load_pipeline([EXAMPLES / "text-transform" / "pipeline.yaml"])
    with pytest.raises(PlanError, match="--algo nope: no algo by that name in the pipeline; known: demo/uppercase"):
        plan_for(topology, algo_overrides={"nope": "x"})


def test_data_connectors_need_kafka_and_connect() -> None:
    _, topology = load_pipeline([EXAMPLES / "data-connector" / "pipeline.yaml"])
    with pytest.raises(PlanError, match="pass --kafka HOST:PORT and --connect URL"):
        plan_for(topology)
    plan = plan_for(topology, kafka=True)
    (source, sink) = plan.connectors  # type: ignore[attr-defined]
    assert source.config["connector.class"].endswith("FileStreamSourceConnector")
    assert source.config["topic"] == "algorun.ops.file-copy.file-source.1.lines"
    assert sink.config["topics"] == "algorun.ops.file-copy.normalise.1.clean"


def test_unresolved_algo_ref_names_what_to_pass() -> None:
    with pytest.raises(SpecError, match=r"spec.algos\[0\].algoRef: .* give its YAML file too"):
        load_pipeline([EXAMPLES / "original-sample" / "pipeline.yaml"])
    spec = check_files([EXAMPLES / "original-sample" / "pipeline.yaml"]).pipelines()[0].spec
    with pytest.raises(PlanError, match="pass the Algo's YAML file after the pipeline"):
        plan_for(build_topology(spec))


def test_http_algo_without_entrypoint_asks_for_algo_option() -> None:
    text = (EXAMPLES / "text-transform" / "pipeline.yaml").read_text()
    text = text.replace("            entrypoint: python3 algos/uppercase_server.py --port 18901\n", "")
    report = check_text(text)
    topology = build_topology(report.pipelines()[0].spec)
    with pytest.raises(PlanError, match=r'--algo demo/uppercase="COMMAND"'):
        plan_for(topology)
