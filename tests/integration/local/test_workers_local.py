"""`algorun run` honours an algo's `workers`: its runner is a supervisor of that many runner processes on the
local log, every message comes through, and Ctrl-C drains them all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.local_mode import Receiver, post, processes_with, running_pipeline, webhook_receiver
from tests.support.procs import wait_for

pytestmark = pytest.mark.timeout(300)
WORDCOUNT = "      spec:\n        owner: demo\n        name: wordcount\n"
"""Where the word-count algo's instance (index 1) gives its spec; `workers` goes just before."""


@pytest.fixture
def receiver(tmp_path: Path) -> Receiver:  # type: ignore[misc]
    with webhook_receiver(tmp_path) as r:
        yield r


def children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def started_by(parent: int, fragment: str) -> list[int]:
    """The children of `parent` whose command line contains `fragment`. Not every process that shows it: a child
    the runner is forking shows the runner's own command line until it execs its program."""
    return [pid for pid in processes_with(fragment) if pid in children(parent)]


def test_an_algo_with_two_workers_runs_two_runner_processes_and_loses_nothing(
    tmp_path: Path, receiver: Receiver
) -> None:
    pipeline = receiver.examples / "text-transform" / "pipeline.yaml"
    text = pipeline.read_text()
    assert WORDCOUNT in text
    pipeline.write_text(text.replace(WORDCOUNT, "      workers: 2\n" + WORDCOUNT))
    state = tmp_path / "state"
    count = 20
    with running_pipeline([pipeline], state, tmp_path / "run.log") as (run, ports):
        (runner,) = wait_for(
            lambda: started_by(run.pid, f"{state}/configs/runner-demo-wordcount"), timeout=30, what="the runner"
        )
        wait_for(lambda: len(children(runner)) == 2, timeout=60, what="the runner's two workers")
        url = f"http://127.0.0.1:{ports.http}/demo/text-transform/text"
        for n in range(count):
            post(url, " ".join(["w"] * (n + 1)).encode(), "text/plain")

        def word_counts() -> set[int]:
            bodies = [d["body"] for d in receiver.deliveries() if d["contentType"] == "application/json"]
            return {json.loads(b)["words"] for b in bodies}

        wait_for(lambda: word_counts() >= set(range(1, count + 1)), timeout=120, what="every word count")
        workers = children(runner)
    assert run.popen.returncode == 0, (tmp_path / "run.log").read_text()
    assert not [p for p in workers if Path(f"/proc/{p}").exists()], "a worker outlived `algorun run`"
