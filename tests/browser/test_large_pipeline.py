"""A 20-step pipeline stays readable: every step and edge drawn, no two boxes overlapping, each step's name shown
in full, and the page fits the graph without anything drawn outside it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.inprocess_console import console_over

pytestmark = pytest.mark.timeout(120)

STEPS = 20


def pipe(source: str, dest: str, dest_input: str) -> dict[str, str]:
    return {"sourceName": source, "sourceOutputName": "y", "destName": dest, "destInputName": dest_input}


def twenty_steps(folder: Path) -> Path:
    """A chain of 20 HTTP algos with a side branch every fifth step, retries on every third, into one hook."""
    algos = []
    pipes = [{"sourceName": "Endpoint", "sourceOutputName": "in", "destName": "load/step1:1[1]", "destInputName": "x"}]
    for n in range(1, STEPS + 1):
        algo: dict[str, Any] = {
            "version": "1",
            "index": 1,
            "spec": {
                "owner": "load",
                "name": f"step{n}",
                "executor": "http",
                "versions": [{"versionTag": "1", "entrypoint": f"python3 step.py {n}"}],
                "inputs": [{"name": "x", "inputDeliveryType": "Http", "http": {"port": 19000 + n, "path": "/"}}],
                "outputs": [{"name": "y", "outputDeliveryType": "HttpResponse"}],
            },
        }
        if n % 3 == 0:
            algo["retryEnabled"] = True
            algo["retryStrategy"] = {"strategy": "RetryTopics", "steps": [{"index": 0, "backoffDuration": "1s"}]}
        algos.append(algo)
        if n > 1:
            source = f"load/step{n - 1 if n % 5 else n - 4}:1[1]"
            pipes.append(
                {"sourceName": source, "sourceOutputName": "y", "destName": f"load/step{n}:1[1]", "destInputName": "x"}
            )
    pipes.append(
        {
            "sourceName": f"load/step{STEPS}:1[1]",
            "sourceOutputName": "y",
            "destName": "EventHook",
            "destInputName": "out",
        }
    )
    spec = {
        "apiVersion": "algo.run/v1beta1",
        "kind": "PipelineDeployment",
        "metadata": {"name": "twenty"},
        "spec": {
            "deploymentOwner": "load",
            "deploymentName": "twenty",
            "endpoint": {"paths": [{"name": "in"}]},
            "algos": algos,
            "eventHook": {"webHooks": [{"pipelineHookInputName": "out", "webHookUrl": "http://127.0.0.1:9/out"}]},
            "pipes": pipes,
        },
    }
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_twenty_steps_are_laid_out_without_overlap(page: Any, tmp_path: Path) -> None:
    with console_over(twenty_steps(tmp_path), tmp_path) as console:
        page.goto(console.url)
        page.wait_for_selector("[data-node-id]")
        boxes = page.eval_on_selector_all(
            "[data-node-id] rect",
            "els => els.map(e => { const b = e.getBoundingClientRect(); return [b.x, b.y, b.width, b.height]; })",
        )
        algos = page.eval_on_selector_all("[data-kind=algo] .node-label", "els => els.map(e => e.firstChild.nodeValue)")
        edges = page.locator("[data-edge-id]").count()
        graph = page.eval_on_selector("#graph svg", "e => [e.viewBox.baseVal.width, e.viewBox.baseVal.height]")
        inside = page.eval_on_selector_all(
            "[data-node-id], [data-edge-id]",
            """(els, [w, h]) => els.every(e => { const b = e.getBBox();
                return b.x >= -1 && b.y >= -1 && b.x + b.width <= w + 1 && b.y + b.height <= h + 1; })""",
            graph,
        )
    assert sorted(algos) == sorted(f"load/step{n}:1[1]" for n in range(1, STEPS + 1))
    assert edges == (STEPS + 1) + STEPS + 2 * (STEPS // 3) + 1  # pipes, dead-letter and retry branches, hook's
    overlapping = [
        (a, b)
        for i, a in enumerate(boxes)
        for b in boxes[i + 1 :]
        if a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]
    ]
    assert not overlapping
    assert inside
