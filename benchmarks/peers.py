"""The peers: the same 1 KB passthrough (4 partitions, at-least-once) through Quix Streams, Bytewax,
faust-streaming and Benthos, beside a raw confluent-kafka loop and algorun's python runner, on one broker.

Every side reads a pre-filled input topic and writes an output topic; its rate is measured from the first output to
the last by polling the output's end offset, and its CPU per message is the CPU time its process (all threads,
children included) spent over that window, read from /proc, so every side is measured the same way. The sides
run in `BENCH_ROUNDS` interleaved rounds, the order rotating each round (`benchmarks/_rounds.py`); each figure is
the best of its rounds and the ratio to raw is also given as the median of the per-round ratios.

Each Python peer runs in its own virtualenv under the test-bed cache (`$ALGORUN_TESTBIN/peers`): their
confluent-kafka pins differ from algorun's. Their versions are pinned below. Benthos is built from the Go module
pinned in testbin/go/benthos. A peer that cannot be installed or built is reported with the reason, and the
benchmark goes on without it. Each peer is configured as its docs recommend for throughput with at-least-once
delivery; the guarantee each one gives is printed beside its figure.

    .venv/bin/python -m benchmarks.peers          # or: make bench
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer

from algorun.bus import Bus, KafkaSettings, open_bus
from benchmarks import runner as runner_bench
from benchmarks._broker import kafka_bootstrap
from benchmarks._rounds import rotated
from benchmarks._targets import report
from tests.support import testbin
from tests.support.runner_configs import names

REPO = Path(__file__).resolve().parents[1]
APPS = REPO / "benchmarks" / "_peer_apps"
N = int(os.environ.get("BENCH_PEER_MESSAGES", "100000"))
N_SLOW = int(os.environ.get("BENCH_PEER_SLOW_MESSAGES", "10000"))  # faust: ~100 s for N at its rate
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
RUN_LIMIT_S = float(os.environ.get("BENCH_PEER_LIMIT_S", "240"))
BENTHOS_MODULE = REPO / "testbin" / "go" / "benthos"
BENTHOS_BUILD = ("go", "build", "-trimpath", "-ldflags=-s -w -checklinkname=0")
BENTHOS_PACKAGE = "github.com/benthosdev/benthos/v4/cmd/benthos"


class Unavailable(Exception):
    """A peer that cannot be installed or built here; the message says why."""


@dataclass
class Peer:
    """One side of the comparison: how to make it runnable, how to start it, the guarantee it gives."""

    name: str
    guarantee: str
    requirements: tuple[str, ...] = ()
    messages: int = N
    argv: Callable[[Path, str, dict[str, str], Path], list[str]] = field(default=lambda *_: [])
    env: Callable[[str, dict[str, str]], dict[str, str]] = field(default=lambda *_: {})


def _python_app(script: str) -> Callable[[Path, str, dict[str, str], Path], list[str]]:
    def argv(home: Path, bootstrap: str, n: dict[str, str], _work: Path) -> list[str]:
        return [str(home / "bin" / "python"), str(APPS / script), bootstrap, n["input"], n["output"], n["group"]]

    return argv


def _bytewax_argv(home: Path, _bootstrap: str, _n: dict[str, str], work: Path) -> list[str]:
    python = str(home / "bin" / "python")
    recovery = work / "recovery"
    recovery.mkdir()
    subprocess.run([python, "-m", "bytewax.recovery", str(recovery), "1"], check=True, capture_output=True)
    flow = f"{APPS / 'bytewax_passthrough.py'}:flow"
    # Recovery on (the only at-least-once mode): a snapshot every second (what a resume may replay), no backups kept.
    return [python, "-m", "bytewax.run", flow, "-r", str(recovery), "-s", "1", "-b", "0"]


def _benthos_argv(home: Path, bootstrap: str, n: dict[str, str], work: Path) -> list[str]:
    # kafka_franz both ways: its input acknowledges (and commits, every commit_period) an offset only once the
    # output acknowledged the message; batching and many batches in flight are its documented throughput knobs.
    config = {
        "http": {"enabled": False},
        "logger": {"level": "WARN"},
        "metrics": {"none": {}},
        "input": {
            "kafka_franz": {
                "seed_brokers": [bootstrap],
                "topics": [n["input"]],
                "consumer_group": n["group"],
                "start_from_oldest": True,
                "checkpoint_limit": 10000,
                "commit_period": "200ms",
                "batching": {"count": 500, "period": "5ms"},
            }
        },
        "output": {
            "kafka_franz": {
                "seed_brokers": [bootstrap],
                "topic": n["output"],
                "key": '${! meta("kafka_key") }',
                "max_in_flight": 64,
                "idempotent_write": True,
                "batching": {"count": 500, "period": "5ms"},
            }
        },
    }
    path = work / "benthos.json"
    path.write_text(json.dumps(config))  # YAML is a superset of JSON
    return [str(home / "benthos"), "-c", str(path)]


PEERS = {
    p.name: p
    for p in (
        Peer(
            "quixstreams",
            "at-least-once (processing_guarantee; checkpoint flushes the producer, then commits)",
            ("quixstreams==3.28.1",),
            argv=_python_app("quix_passthrough.py"),
        ),
        Peer(
            "bytewax",
            "at-least-once with recovery on (offsets in its snapshots; output flushed per batch)",
            ("bytewax[kafka]==0.21.1",),
            argv=_bytewax_argv,
            env=lambda bootstrap, n: {"PEER_ARGS": f"{bootstrap} {n['input']} {n['output']}"},
        ),
        Peer(
            "faust",
            "at-least-once (processing_guarantee; commits acknowledged events' offsets)",
            ("faust-streaming==0.15.3",),
            messages=N_SLOW,
            argv=_python_app("faust_passthrough.py"),
        ),
        Peer(
            "benthos",
            "at-least-once (input offsets committed after the output's acknowledgement)",
            argv=_benthos_argv,
        ),
    )
}
GUARANTEES = {
    "raw_confluent_kafka": "at-least-once (commits offsets whose outputs were acknowledged)",
    "python": "at-least-once (algorun runner: commits after the outputs are acknowledged)",
}


# ---- making the peers runnable ----


def _stamp_ok(home: Path, key: str) -> bool:
    stamp = home / ".installed"
    return stamp.exists() and stamp.read_text() == key


def _install_python_peer(peer: Peer, cache: Path) -> Path:
    """A virtualenv holding only the peer's pinned requirements, reused while the pins are the same."""
    key = " ".join(peer.requirements)
    home = cache / f"{peer.name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    if _stamp_ok(home, key):
        return home
    shutil.rmtree(home, ignore_errors=True)
    uv = Path(sys.executable).with_name("uv")
    if uv.exists():
        steps = [
            [str(uv), "venv", "-q", "--python", sys.executable, str(home)],
            [str(uv), "pip", "install", "-q", "--python", str(home / "bin" / "python"), *peer.requirements],
        ]
    else:
        steps = [
            [sys.executable, "-m", "venv", str(home)],
            [str(home / "bin" / "python"), "-m", "pip", "install", "-q", *peer.requirements],
        ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise Unavailable(f"`{' '.join(step[:3])} ...` failed: {done.stderr.strip()[-600:]}")
    (home / ".installed").write_text(key)
    return home


def _build_benthos(cache: Path) -> Path:
    """The benthos command built from the pinned module, reused while the module files and flags are the same."""
    if shutil.which("go") is None:
        raise Unavailable("no Go toolchain on PATH to build Benthos")
    inputs = sorted(p for p in BENTHOS_MODULE.rglob("*") if p.is_file())
    digest = hashlib.sha256(" ".join(BENTHOS_BUILD).encode())
    for p in inputs:
        digest.update(p.relative_to(BENTHOS_MODULE).as_posix().encode() + p.read_bytes())
    key = digest.hexdigest()
    home = cache / f"benthos-{key[:12]}"
    if _stamp_ok(home, key):
        return home
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
    argv = [*BENTHOS_BUILD, "-o", str(home / "benthos.tmp"), BENTHOS_PACKAGE]
    print(f"peers: building Benthos ({' '.join(argv)}), several minutes on 2 cores", file=sys.stderr, flush=True)
    done = subprocess.run(argv, cwd=BENTHOS_MODULE, env=env, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if not line.startswith("go: downloading")]
        raise Unavailable(f"`{' '.join(BENTHOS_BUILD)} {BENTHOS_PACKAGE}` failed: {' | '.join(lines[-8:])}")
    (home / "benthos.tmp").replace(home / "benthos")
    (home / ".installed").write_text(key)
    return home


def prepare(peer: Peer) -> Path:
    cache = testbin.root() / "peers"
    cache.mkdir(parents=True, exist_ok=True)
    if peer.name == "benthos":
        return _build_benthos(cache)
    return _install_python_peer(peer, cache)


# ---- measuring one side ----


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system, every thread) of `pid` and of its live descendants, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # after the command: state ppid ... utime(12th) stime(13th) cutime cstime
        stats[int(entry.name)] = (int(fields[1]), sum(int(f) for f in fields[11:15]) / tick)
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        if p in stats:
            total += stats[p][1]
            todo.extend(c for c, (parent, _) in stats.items() if parent == p)
    return total


async def _watch(bootstrap: str, topic: str, count: int, proc: subprocess.Popen[bytes]) -> tuple[float, float]:
    """(messages/s, CPU seconds per message) between the first output and the `count`-th."""
    pid = proc.pid
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-watch-{uuid.uuid4().hex}"})
    try:
        first: tuple[float, int, float] | None = None
        cpu_now = 0.0
        deadline = time.monotonic() + RUN_LIMIT_S
        while True:
            exited = proc.poll() is not None  # seen before the read: a side that ends once done is not failed
            got = await asyncio.to_thread(runner_bench.end_offset, c, topic)
            now = time.perf_counter()
            cpu_now = _cpu_seconds(pid) or cpu_now  # the last reading while the process was there
            if got and first is None:
                first = (now, got, cpu_now)
            if got >= count and first is not None:
                t0, n0, cpu0 = first
                if now <= t0 or got <= n0:
                    raise RuntimeError(f"all {count} outputs came in one reading: too few to time, raise the count")
                return (got - n0) / (now - t0), (cpu_now - cpu0) / (got - n0)
            if exited:
                raise RuntimeError(f"it exited with {proc.returncode} after {got} of {count} outputs")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: {got} of {count} outputs in {RUN_LIMIT_S:.0f} s")
            await asyncio.sleep(0.02)
    finally:
        c.close()


def _start(argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(argv, cwd=cwd, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)


async def _stop(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM a side still running and give it `grace_s` to drain; kill it after that."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.to_thread(proc.wait, grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def run_side(bootstrap: str, bus: Bus, side: str, home: Path | None) -> dict[str, float]:
    """Fill an input topic, start the side in its own process, measure it, stop it, delete the topics."""
    peer = PEERS.get(side)
    count = peer.messages if peer else N
    n = names(f"peer-{side.replace('_', '-')}")
    await runner_bench.topics(bus, n)
    await asyncio.to_thread(runner_bench.fill, bootstrap, n["input"], count)
    with tempfile.TemporaryDirectory(prefix=f"algorun-peer-{side}-") as work:
        if peer is None:  # raw and python: benchmarks/runner.py's own child processes
            spec = json.dumps([side, bootstrap, n, count, 0])
            argv = [sys.executable, str(runner_bench.SCRIPT), "--child", spec]
            env: dict[str, str] = {}
        else:
            assert home is not None
            argv = peer.argv(home, bootstrap, n, Path(work))
            env = peer.env(bootstrap, n)
        log = Path(work) / "side.log"
        proc = _start(argv, Path(work) if peer else REPO, env, log)
        try:
            rate, cpu = await _watch(bootstrap, n["output"], count, proc)
        except Exception as exc:
            raise RuntimeError(f"{side}: {exc}; its log's last lines:\n{log.read_text()[-1500:]}") from exc
        finally:
            await _stop(proc, 30)
            await bus.delete_topics([n["input"], n["output"], n["dlq"]])
    return {"messages_per_s": round(rate), "cpu_us_per_message": round(cpu * 1e6, 2), "messages": count}


# ---- the suite ----


async def suite(bootstrap: str, homes: dict[str, Path]) -> dict[str, Any]:
    bus = open_bus(KafkaSettings(bootstrap_servers=bootstrap))
    sides = ["raw_confluent_kafka", "python", *homes]
    per_round: dict[str, list[dict[str, float]]] = {s: [] for s in sides}
    failures: dict[str, str] = {}
    try:
        for round_index in range(ROUNDS):
            for side in rotated(sides, round_index):
                if side in failures:
                    continue
                try:
                    result = await run_side(bootstrap, bus, side, homes.get(side))
                except Exception as exc:  # one peer failing must not hide the others' figures
                    failures[side] = str(exc)
                    print(f"peers: {side} failed: {exc}", file=sys.stderr, flush=True)
                    continue
                per_round[side].append(result)
                print(f"peers: round {round_index + 1} {side}: {result}", file=sys.stderr, flush=True)
    finally:
        await bus.close()
    return summarise(per_round, failures)


def summarise(per_round: dict[str, list[dict[str, float]]], failures: dict[str, str]) -> dict[str, Any]:
    raw_rounds = per_round.get("raw_confluent_kafka", [])
    out: dict[str, Any] = {}
    for side, results in per_round.items():
        if not results:
            continue
        best = max(results, key=lambda r: r["messages_per_s"])
        entry: dict[str, Any] = {
            "messages_per_s": best["messages_per_s"],
            "cpu_us_per_message": min(r["cpu_us_per_message"] for r in results),
            "rounds_messages_per_s": [r["messages_per_s"] for r in results],
            "guarantee": PEERS[side].guarantee if side in PEERS else GUARANTEES[side],
        }
        if raw_rounds and side != "raw_confluent_kafka":
            raw_best = max(r["messages_per_s"] for r in raw_rounds)
            entry["over_raw"] = round(best["messages_per_s"] / raw_best, 2)
            pairs = zip(results, raw_rounds, strict=False)
            entry["over_raw_median_of_rounds"] = round(
                statistics.median(r["messages_per_s"] / b["messages_per_s"] for r, b in pairs), 2
            )
            raw_cpu = min(r["cpu_us_per_message"] for r in raw_rounds)
            own_cpu = entry["cpu_us_per_message"]
            entry["over_raw_by_cpu"] = round(raw_cpu / own_cpu, 2) if own_cpu else None
        out[side] = entry
    for side, why in failures.items():
        out.setdefault(side, {})["failed"] = why
    targets: dict[str, bool] = {}
    if "python" in out and "over_raw_median_of_rounds" in out["python"]:
        python = out["python"]
        targets["python_over_raw_median>=0.7"] = python["over_raw_median_of_rounds"] >= 0.7
        for peer in ("quixstreams", "bytewax", "faust"):
            if "messages_per_s" in out.get(peer, {}):
                targets[f"python_ahead_of_{peer}"] = python["messages_per_s"] > out[peer]["messages_per_s"]
    out["targets"] = targets
    return out


def main() -> None:
    wanted = [p for p in os.environ.get("BENCH_PEERS", ",".join(PEERS)).split(",") if p]
    result: dict[str, Any] = {"value_bytes": len(runner_bench.VALUE), "partitions": runner_bench.PARTITIONS}
    result["cores"] = os.cpu_count()
    homes: dict[str, Path] = {}
    unavailable: dict[str, str] = {}
    for name in wanted:
        try:
            homes[name] = prepare(PEERS[name])
        except (Unavailable, subprocess.TimeoutExpired, OSError) as exc:
            unavailable[name] = str(exc)
            print(f"peers: {name} unavailable: {exc}", file=sys.stderr, flush=True)
    with kafka_bootstrap() as bootstrap:
        result["peers"] = runner_bench.run_loop(suite(bootstrap, homes))
    for name, why in unavailable.items():
        result["peers"][name] = {"unavailable": why, "guarantee": PEERS[name].guarantee}
    print(json.dumps(result, indent=2))
    report_targets(result["peers"])


def report_targets(peers: dict[str, Any]) -> None:
    """The target lines (`benchmarks._targets`): the python runner's median ratio to raw, and its lead over each
    Python peer that ran (a peer that did not run is a line too, so its absence shows)."""
    python = peers.get("python", {})
    ratio = python.get("over_raw_median_of_rounds")
    report("peers.python_over_raw_median", "missing" if ratio is None else ratio, ">=0.7", (ratio or 0) >= 0.7)
    for peer in ("quixstreams", "bytewax", "faust"):
        theirs = peers.get(peer, {}).get("messages_per_s")
        ours = python.get("messages_per_s")
        if theirs is None or ours is None:
            report(f"peers.python_over_{peer}", "missing", ">1", False)
        else:
            report(f"peers.python_over_{peer}", round(ours / theirs, 2), ">1", ours > theirs)


if __name__ == "__main__":
    main()
