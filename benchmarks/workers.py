"""Runner workers: the python passthrough runner with 1 and with 2 worker processes (`workers`), beside a raw
confluent-kafka loop and Benthos, on one broker, 1 KB messages on 4 partitions, at-least-once everywhere.

Each side reads a pre-filled input topic in its own process tree (`algorun runner` exactly as a pod runs it, its
workers included). A runner's rate is timed from the moment its /ready answers 200 (every worker owns
partitions; before that the first worker runs alone and a rebalance follows) to the last output; raw and Benthos
are timed from their first output, as `benchmarks/peers.py` times them. The CPU per message is the CPU time of the
side's processes over that window; `machine_busy_cores` is how many of the machine's cores were busy over the
window (from /proc/stat), and `others_cores` the part of it that was not the side: the broker, the watcher, and
anything else running on the machine. The sides run in `BENCH_ROUNDS` interleaved rounds, the order rotating
each round (`benchmarks/_rounds.py`); each figure is the best of its rounds, and the 2-over-1 ratio is also the
median of the per-round ratios.

Target (issue 26): with two workers, ahead of Benthos on throughput; where the machine cannot show it, the
figures say why (two workers need two cores of their own, and on a 2-core machine the broker takes its share).

    .venv/bin/python -m benchmarks.workers          # or: make bench
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer

from algorun.bus import Bus, KafkaSettings, open_bus
from benchmarks import peers
from benchmarks import runner as runner_bench
from benchmarks._broker import kafka_bootstrap
from benchmarks._rounds import rotated
from benchmarks._targets import report
from tests.support.runner_configs import names, runner_config

REPO = Path(__file__).resolve().parents[1]
N = int(os.environ.get("BENCH_WORKERS_MESSAGES", "200000"))
N_RUNNER = int(os.environ.get("BENCH_WORKERS_RUNNER_MESSAGES", "600000"))
"""A runner side's input is larger: its window opens only once every worker owns partitions, and until then the
first worker to join consumes alone (3 s of rebalance were seen on this machine)."""
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
RUN_LIMIT_S = float(os.environ.get("BENCH_WORKERS_LIMIT_S", "240"))
RUNNER_SIDES = {"workers_1": 1, "workers_2": 2}
_PORT_LINE = re.compile(rb"started; health on :(\d+)")


def _busy_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat's first line."""
    fields = [int(f) for f in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _ready(log: Path) -> bool:
    """Whether the runner whose log is `log` answers /ready with 200 (every worker owns partitions)."""
    found = _PORT_LINE.search(log.read_bytes())
    if found is None:
        return False
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{int(found.group(1))}/ready", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


async def _watch(
    bootstrap: str, topic: str, count: int, proc: subprocess.Popen[bytes], started: Callable[[], bool]
) -> dict[str, float]:
    """Rate, CPU per message and the machine's busy cores between the first reading where `started()` holds and
    outputs exist, and the `count`-th output."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-watch-{uuid.uuid4().hex}"})
    cores = os.cpu_count() or 1
    try:
        first: tuple[float, int, float, tuple[int, int]] | None = None
        cpu_now = 0.0
        deadline = time.monotonic() + RUN_LIMIT_S
        while True:
            exited = proc.poll() is not None
            got = await asyncio.to_thread(runner_bench.end_offset, c, topic)
            now = time.perf_counter()
            cpu_now = peers._cpu_seconds(proc.pid) or cpu_now
            ticks = _busy_ticks()
            if got and first is None and await asyncio.to_thread(started):
                first = (now, got, cpu_now, ticks)
            if got >= count and first is not None:
                t0, n0, cpu0, ticks0 = first
                if now <= t0 or got <= n0:
                    raise RuntimeError(f"all {count} outputs came before the window opened: raise the count")
                window = now - t0
                busy = cores * (ticks[0] - ticks0[0]) / max(ticks[1] - ticks0[1], 1)
                side = (cpu_now - cpu0) / window
                return {
                    "messages_per_s": round((got - n0) / window),
                    "cpu_us_per_message": round((cpu_now - cpu0) / (got - n0) * 1e6, 2),
                    "side_cores": round(side, 2),
                    "machine_busy_cores": round(busy, 2),
                    "others_cores": round(max(busy - side, 0.0), 2),
                    "timed_messages": got - n0,
                }
            if exited:
                raise RuntimeError(f"it exited with {proc.returncode} after {got} of {count} outputs")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: {got} of {count} outputs in {RUN_LIMIT_S:.0f} s")
            await asyncio.sleep(0.02)
    finally:
        c.close()


def _argv(side: str, bootstrap: str, n: dict[str, str], work: Path, benthos: Path | None) -> list[str]:
    if side in RUNNER_SIDES:
        config = work / "runner.json"
        config.write_text(runner_config(n, entrypoint="tests.algos.pyalgos:passthrough").model_dump_json(by_alias=True))
        cli = [sys.executable, "-m", "algorun.cli.main", "runner", "--config", str(config)]
        return [*cli, "--bus", f"kafka://{bootstrap}", "--health-port", "0", "--workdir", str(REPO)]
    if side == "benthos":
        assert benthos is not None
        return peers._benthos_argv(benthos, bootstrap, n, work)
    return [sys.executable, str(runner_bench.SCRIPT), "--child", json.dumps([side, bootstrap, n, N, 0])]


async def run_side(bootstrap: str, bus: Bus, side: str, benthos: Path | None) -> dict[str, float]:
    """Fill an input topic, start the side, measure it, stop it (SIGTERM), delete the topics."""
    n = names(f"bench-{side.replace('_', '-')}")
    count = N_RUNNER if side in RUNNER_SIDES else N
    await runner_bench.topics(bus, n)
    await asyncio.to_thread(runner_bench.fill, bootstrap, n["input"], count)
    with tempfile.TemporaryDirectory(prefix=f"algorun-bench-{side}-") as tmp:
        work = Path(tmp)
        log = work / "side.log"
        env = {"ALGORUN_RUNNER_WORKERS": str(RUNNER_SIDES[side])} if side in RUNNER_SIDES else {}
        proc = peers._start(_argv(side, bootstrap, n, work, benthos), REPO if side != "benthos" else work, env, log)
        started = (lambda: _ready(log)) if side in RUNNER_SIDES else (lambda: True)
        try:
            return await _watch(bootstrap, n["output"], count, proc, started)
        except Exception as exc:
            raise RuntimeError(f"{side}: {exc}; its log's last lines:\n{log.read_text()[-1500:]}") from exc
        finally:
            await peers._stop(proc, 60)
            await bus.delete_topics([n["input"], n["output"], n["dlq"]])


async def suite(bootstrap: str, benthos: Path | None) -> dict[str, list[dict[str, float]]]:
    bus = open_bus(KafkaSettings(bootstrap_servers=bootstrap))
    sides = ["raw_confluent_kafka", "workers_1", "workers_2", *(["benthos"] if benthos else [])]
    per_round: dict[str, list[dict[str, float]]] = {s: [] for s in sides}
    try:
        for round_index in range(ROUNDS):
            for side in rotated(sides, round_index):
                result = await run_side(bootstrap, bus, side, benthos)
                per_round[side].append(result)
                print(f"workers: round {round_index + 1} {side}: {result}", file=sys.stderr, flush=True)
    finally:
        await bus.close()
    return per_round


def summarise(per_round: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for side, results in per_round.items():
        best = max(results, key=lambda r: r["messages_per_s"])
        out[side] = {**best, "rounds_messages_per_s": [r["messages_per_s"] for r in results]}
        out[side]["cpu_us_per_message"] = min(r["cpu_us_per_message"] for r in results)
    rate = {side: entry["messages_per_s"] for side, entry in out.items()}
    one, two = per_round["workers_1"], per_round["workers_2"]
    ratios = {
        "workers_2_over_workers_1": round(rate["workers_2"] / rate["workers_1"], 2),
        "workers_2_over_workers_1_median_of_rounds": round(
            statistics.median(b["messages_per_s"] / a["messages_per_s"] for a, b in zip(one, two, strict=True)), 2
        ),
        "workers_1_over_raw": round(rate["workers_1"] / rate["raw_confluent_kafka"], 2),
        "workers_2_over_raw": round(rate["workers_2"] / rate["raw_confluent_kafka"], 2),
    }
    targets: dict[str, Any] = {}
    if "benthos" in rate:
        ratios["benthos_over_raw"] = round(rate["benthos"] / rate["raw_confluent_kafka"], 2)
        ratios["workers_2_over_benthos"] = round(rate["workers_2"] / rate["benthos"], 2)
        targets["workers_2_ahead_of_benthos"] = rate["workers_2"] > rate["benthos"]
    out["ratios"] = ratios
    out["targets"] = targets
    out["note"] = (
        f"{os.cpu_count()} cores shared by the broker, the side and anything else running: workers_2 had "
        f"{out['workers_2']['side_cores']} cores for itself while {out['workers_2']['others_cores']} went to the "
        f"rest (machine busy {out['workers_2']['machine_busy_cores']} of {os.cpu_count()}); two workers can only "
        "double one worker's rate with two cores free of the broker"
    )
    return out


def main() -> None:
    result: dict[str, Any] = {"value_bytes": len(runner_bench.VALUE), "partitions": runner_bench.PARTITIONS}
    result["cores"] = os.cpu_count()
    result["messages"] = {"raw_and_benthos": N, "runner": N_RUNNER}
    benthos: Path | None = None
    try:
        benthos = peers.prepare(peers.PEERS["benthos"])
    except (peers.Unavailable, subprocess.TimeoutExpired, OSError) as exc:
        result["benthos_unavailable"] = str(exc)
        print(f"workers: benthos unavailable: {exc}", file=sys.stderr, flush=True)
    with kafka_bootstrap() as bootstrap:
        result["workers"] = summarise(runner_bench.run_loop(suite(bootstrap, benthos)))
    print(json.dumps(result, indent=2))
    report_targets(result["workers"])


def report_targets(workers: dict[str, Any]) -> None:
    """The target line (`benchmarks._targets`): two workers ahead of Benthos on throughput (a line saying
    `missing` when Benthos could not run), then the note of how the cores were shared, which says why the machine
    may not show it."""
    ours = workers.get("workers_2", {}).get("messages_per_s")
    theirs = workers.get("benthos", {}).get("messages_per_s")
    if ours is None or theirs is None:
        report("workers.two_workers_over_benthos", "missing", ">1", False)
    else:
        report("workers.two_workers_over_benthos", round(ours / theirs, 3), ">1", ours > theirs)
    print(f"note: {workers['note']}", flush=True)


if __name__ == "__main__":
    main()
