"""Running `algorun run` the way a user does, as a subprocess, with the example webhook receiver.

The examples' webhooks name the example receiver (examples/webhook_receiver.py, one JSON line per delivery) on
127.0.0.1:18999, the port `make demo` and the README use. A test's receiver listens on a free port instead, and the
test runs a copy of the examples whose webhooks name that port (`Receiver.examples`), so two test runs on one machine
never share a receiver. Every run also gets free endpoint ports and its own state directory.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.kafka import KafkaBroker
from tests.support.paths import EXAMPLES
from tests.support.procs import ManagedProcess, free_port, free_ports, wait_for

EXAMPLES_RECEIVER = "127.0.0.1:18999"
"""Where the examples' webhooks send, as written in their YAML."""


@dataclass
class Receiver:
    """The example webhook receiver, what it has received so far, and the examples that send to it."""

    process: ManagedProcess
    output: Path
    port: int
    examples: Path
    """A copy of the repository's examples whose webhooks name this receiver."""

    def deliveries(self) -> list[dict[str, Any]]:
        lines = self.output.read_text().splitlines() if self.output.exists() else []
        return [json.loads(line) for line in lines if line.startswith("{")]


def examples_copy(into: Path, receiver_port: int) -> Path:
    """The repository's examples copied to `into`, their webhooks naming a receiver on `receiver_port` of
    127.0.0.1; their relative paths (inputs, algo scripts) hold in the copy as in the repository."""
    shutil.copytree(EXAMPLES, into, ignore=shutil.ignore_patterns("__pycache__"))
    for path in into.rglob("*.yaml"):
        text = path.read_text()
        if EXAMPLES_RECEIVER in text:
            path.write_text(text.replace(EXAMPLES_RECEIVER, f"127.0.0.1:{receiver_port}"))
    return into


@contextmanager
def webhook_receiver(tmp: Path) -> Iterator[Receiver]:
    """The example receiver on a free port, with a copy of the examples sending to it (in `tmp/examples`)."""
    output = tmp / "received.jsonl"
    port = free_port()
    examples = examples_copy(tmp / "examples", port)
    argv = [sys.executable, "-u", str(EXAMPLES / "webhook_receiver.py"), "--port", str(port)]
    # The receiver prints deliveries on stdout and its banner on stderr: both go to the log; deliveries are the
    # lines that parse as JSON objects.
    process = ManagedProcess("webhook-receiver", argv, output)
    try:
        # Its own banner, printed once it holds the port (another process answering on the port is not it).
        wait_for(lambda: "receiver listening" in output.read_text(), timeout=15, what="the receiver", proc=process)
        yield Receiver(process, output, port, examples)
    finally:
        process.stop(grace=2)


@dataclass
class Ports:
    http: int
    grpc: int
    metrics: int

    @classmethod
    def free(cls) -> Ports:
        return cls(*free_ports(3))

    def args(self) -> list[str]:
        return ["--port", str(self.http), "--grpc-port", str(self.grpc), "--metrics-port", str(self.metrics)]


def run_args(
    files: Sequence[Path],
    state_dir: Path,
    ports: Ports,
    *,
    kafka: KafkaBroker | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    argv = [sys.executable, "-m", "algorun.cli.main", "run", *map(str, files), "--state-dir", str(state_dir)]
    argv += ports.args()
    if kafka is not None:
        argv += ["--kafka", kafka.bootstrap()]
    return [*argv, *extra]


def run_until_idle(
    files: Sequence[Path],
    state_dir: Path,
    *,
    inputs: Sequence[str] = (),
    kafka: KafkaBroker | None = None,
    extra: Sequence[str] = (),
    timeout: float = 180,
) -> subprocess.CompletedProcess[str]:
    """`algorun run --until-idle` in the first file's folder (as a user would), its exit code and output."""
    argv = run_args(files, state_dir, Ports.free(), kafka=kafka, extra=[*extra, "--until-idle", "--timeout", "120"])
    for value in inputs:
        argv += ["--input", value]
    return subprocess.run(
        argv,
        cwd=files[0].parent,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )


@contextmanager
def running_pipeline(
    files: Sequence[Path],
    state_dir: Path,
    log: Path,
    *,
    kafka: KafkaBroker | None = None,
    extra: Sequence[str] = (),
    ready: str | None = "endpoint",
) -> Iterator[tuple[ManagedProcess, Ports]]:
    """`algorun run` in the background (its live view goes to `log`), stopped with Ctrl-C (SIGINT) at the end.

    With `ready="endpoint"` it yields once the pipeline's endpoint answers /ready; with None, at once."""
    ports = Ports.free()
    process = ManagedProcess(
        "algorun-run", run_args(files, state_dir, ports, kafka=kafka, extra=extra), log, cwd=files[0].parent
    )
    try:
        if ready == "endpoint":
            wait_for(lambda: _ready(ports.http), timeout=90, what="the endpoint to be ready", proc=process)
        yield process, ports
    finally:
        if process.alive():
            os.killpg(process.pid, signal.SIGINT)
            with suppress(subprocess.TimeoutExpired):
                process.popen.wait(60)
        process.stop(grace=5)


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def post(url: str, body: bytes, content_type: str) -> dict[str, Any]:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=30) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


def processes_with(fragment: str) -> list[int]:
    """Pids of this machine's processes whose command line contains `fragment` (Linux /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if fragment in cmdline:
            pids.append(int(entry.name))
    return pids
