"""Local-mode benchmark: a three-stage python-function pipeline run by `algorun run`, on the embedded local log
and on the test-bed Kafka in the same run.

Reports, per data plane: seconds from starting `algorun run` until its endpoint is ready, and messages/s through
all three stages (1 KB messages written into the endpoint's topic, until the last stage's topic holds them all),
plus the local/Kafka throughput ratio. Run from the repository root: `.venv/bin/python -m benchmarks.local` (or
`make bench`);
BENCH_MESSAGES sets the message count, BENCH_KAFKA an existing broker.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from algorun.api import load_pipeline
from algorun.bus import Bus, KafkaSettings, OutMessage, contract, open_bus
from benchmarks._broker import kafka_bootstrap

N = int(os.environ.get("BENCH_MESSAGES", "20000"))
VALUE = b"v" * 1024
HERE = Path(__file__).resolve().parent / "local_pipeline"

PIPELINE = """
apiVersion: algo.run/v1beta1
kind: PipelineDeployment
metadata: {name: bench}
spec:
  deploymentOwner: bench
  deploymentName: NAME
  endpoint:
    paths: [{name: in, contentType: application/octet-stream, topic: {outputName: in, partitions: 1}}]
  algos:
STAGES
  pipes:
    - {sourceName: Endpoint, sourceOutputName: in, destName: "bench/parse:1[1]", destInputName: data}
    - {sourceName: "bench/parse:1[1]", sourceOutputName: out, destName: "bench/enrich:1[1]", destInputName: data}
    - {sourceName: "bench/enrich:1[1]", sourceOutputName: out, destName: "bench/emit:1[1]", destInputName: data}
    - {sourceName: "bench/emit:1[1]", sourceOutputName: out, destName: EventHook, destInputName: results}
"""
STAGE = """    - version: "1"
      index: 1
      spec:
        owner: bench
        name: {name}
        executor: python
        versions: [{{versionTag: "1", entrypoint: "stages:{name}"}}]
        inputs: [{{name: data, inputDeliveryType: StdIn, contentTypes: [application/octet-stream]}}]
        outputs: [{{name: out, outputDeliveryType: StdOut, contentType: application/octet-stream}}]
"""


def write_pipeline(folder: Path, name: str) -> Path:
    stages = "".join(STAGE.format(name=n) for n in ("parse", "enrich", "emit"))
    path = folder / "pipeline.yaml"
    path.write_text(PIPELINE.replace("NAME", name).replace("STAGES", stages.rstrip("\n")))
    (folder / "stages.py").write_text((HERE / "stages.py").read_text())
    return path


def free_ports(count: int) -> list[int]:
    from tests.support.procs import free_ports as pick

    return pick(count)


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


async def feed_and_drain(bus: Bus, source: str, sink: str) -> float:
    """Write N messages into `source`; seconds until `sink` holds N (its end offsets, polled)."""
    producer = bus.producer()
    started = time.perf_counter()
    batch = 1000
    for first in range(0, N, batch):
        messages = []
        for _ in range(first, min(first + batch, N)):
            trace = contract.new_trace_id()
            headers = contract.first_hop(trace_id=trace, content_type="application/octet-stream")
            messages.append(OutMessage(source, VALUE, key=contract.message_key(trace), headers=headers))
        failures = await producer.produce_many(messages)
        assert not failures, failures
    await producer.flush()
    await producer.close()
    while True:
        lags = await bus.lag("algorun-bench-probe", [sink])
        if sum(lag.end for lag in lags.values()) >= N:
            return time.perf_counter() - started
        await asyncio.sleep(0.05)  # polling the sink's end offsets (the measured interval's resolution)


def measure(label: str, kafka: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"algorun-bench-local-{label}-") as tmp:
        folder = Path(tmp)
        pipeline = write_pipeline(folder, f"b{int(time.time())}-{label}")
        _, topology = load_pipeline([pipeline])
        source = next(t.name for t in topology.topics.values() if ".endpoint." in t.name)
        sink = next(t.name for t in topology.topics.values() if ".emit." in t.name)
        http, grpc, metrics = free_ports(3)
        argv = [sys.executable, "-m", "algorun.cli.main", "run", str(pipeline), "--state-dir", str(folder / "state")]
        argv += ["--port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics)]
        if kafka:
            argv += ["--kafka", kafka]
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while not ready(http):
                if proc.poll() is not None or time.perf_counter() - started > 120:
                    raise SystemExit(f"{label}: algorun run did not become ready (exit {proc.poll()})")
                time.sleep(0.05)  # polling readiness (the measured interval's resolution)
            to_ready = time.perf_counter() - started
            target: str | KafkaSettings = (
                KafkaSettings(bootstrap_servers=kafka) if kafka else f"local://{folder / 'state' / 'log.db'}"
            )

            async def run() -> float:
                bus = open_bus(target)
                try:
                    return await feed_and_drain(bus, source, sink)
                finally:
                    await bus.close()

            seconds = asyncio.run(run())
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
    return {"seconds_to_ready": round(to_ready, 2), "msgs_per_s": round(N / seconds)}


def main() -> None:
    result: dict[str, Any] = {"messages": N, "value_bytes": len(VALUE), "stages": 3, "cores": os.cpu_count()}
    with kafka_bootstrap() as bootstrap:
        result["local"] = measure("local", None)
        result["kafka"] = measure("kafka", bootstrap)
    result["local_over_kafka"] = round(result["local"]["msgs_per_s"] / result["kafka"]["msgs_per_s"], 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
