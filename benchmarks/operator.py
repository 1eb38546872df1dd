"""Operator benchmark: a generated pipeline with 100 algos on the test bed's kube-apiserver.

Reports render time, time until every object exists and the status is Deployed (the test plays the missing
controllers by marking each workload ready as soon as it appears), and the API writes of a no-op resync (must
be 0), with the machine's core count. Run from the repository root: `.venv/bin/python -m benchmarks.operator`
(or `make bench`).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from algorun.api.resources import PipelineDeployment
from algorun.api.topology import build_topology
from algorun.operator import kinds
from algorun.operator.render import render
from algorun.operator.settings import OperatorOptions
from benchmarks._targets import report

ALGOS = 100


def pipeline(namespace: str, count: int = ALGOS) -> dict[str, Any]:
    algos, pipes = [], []
    previous = ("Endpoint", "in")
    for i in range(count):
        name = f"step{i:03d}"
        algos.append(
            {
                "version": "1",
                "index": 1,
                "spec": {
                    "owner": "bench",
                    "name": name,
                    "executor": "http",
                    "versions": [{"versionTag": "1", "image": {"repository": "bench/algo", "tag": "1"}}],
                    "inputs": [{"name": "in", "inputDeliveryType": "Http", "http": {"port": 8080, "path": "/"}}],
                    "outputs": [{"name": "out", "outputDeliveryType": "HttpResponse"}],
                },
            }
        )
        pipes.append(
            {
                "sourceName": previous[0],
                "sourceOutputName": previous[1],
                "destName": f"bench/{name}:1[1]",
                "destInputName": "in",
            }
        )
        previous = (f"bench/{name}:1[1]", "out")
    return {
        "apiVersion": "algo.run/v1beta1",
        "kind": "PipelineDeployment",
        "metadata": {"name": "bench", "namespace": namespace},
        "spec": {
            "deploymentOwner": "bench",
            "deploymentName": "hundred",
            "kafkaBrokers": "kafka:9092",
            "endpoint": {"paths": [{"name": "in"}]},
            "algos": algos,
            "pipes": pipes,
        },
    }


def bench_render() -> float:
    pd = PipelineDeployment.model_validate(pipeline("bench"))
    started = time.perf_counter()
    rounds = 5
    for _ in range(rounds):
        render(pd, build_topology(pd.spec), OperatorOptions())
    return (time.perf_counter() - started) / rounds


async def bench_cluster() -> dict[str, float]:
    from algorun.api.crds import generate_crds
    from tests.support import testbin
    from tests.support.kube import load_yaml_documents, start_kube
    from tests.support.operator_harness import eventually, running_operator
    from tests.support.testbed_fixtures import third_party_crd_files

    etcd, _ = testbin.ensure("etcd")
    apiserver, _ = testbin.ensure("kube-apiserver")
    with tempfile.TemporaryDirectory() as tmp:
        kube = start_kube(etcd, apiserver, Path(tmp))
        try:
            kube.install_crds(load_yaml_documents(third_party_crd_files()))
            kube.install_crds(generate_crds())
            async with running_operator(kube) as h:
                doc = pipeline(h.namespace)
                started = time.perf_counter()
                await h.apply_pd(doc)
                marked: set[str] = set()

                async def deployed() -> bool:
                    for name, obj in (await h.owned(kinds.DEPLOYMENT)).items():
                        if name not in marked and not obj.get("status", {}).get("readyReplicas"):
                            await h.mark_ready(kinds.DEPLOYMENT, name)
                            marked.add(name)
                    return await h.status_of("bench") == "Deployed"

                await eventually(deployed, "status Deployed", limit=300)
                converged = time.perf_counter() - started
                await h.settle()
                ours, server = h.cluster.write_count, h.api_writes()
                resync_started = time.perf_counter()
                await h.operator.reconciler.reconcile(h.namespace, "bench")
                resync = time.perf_counter() - resync_started
                return {
                    "converge_s": converged,
                    "objects": float(len(await h.owned(kinds.DEPLOYMENT)) + len(await h.owned(kinds.CONFIG_MAP))),
                    "resync_s": resync,
                    "resync_writes_operator": float(h.cluster.write_count - ours),
                    "resync_writes_apiserver": float(h.api_writes() - server),
                }
        finally:
            kube.stop()


def main() -> int:
    render_s = bench_render()
    print(f"cores: {os.cpu_count()}")
    print(f"render, {ALGOS} algos: {render_s * 1000:.1f} ms")
    results = asyncio.run(bench_cluster())
    print(f"apply until every object exists and status is Deployed: {results['converge_s']:.2f} s")
    print(
        f"no-op resync: {results['resync_s'] * 1000:.0f} ms, API writes {results['resync_writes_operator']:.0f} "
        f"(operator count), {results['resync_writes_apiserver']:.0f} (API server metrics)"
    )
    writes = results["resync_writes_apiserver"] + results["resync_writes_operator"]
    report("operator.noop_resync_api_writes", f"{writes:.0f}", "==0", writes == 0)
    return 0 if writes == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
