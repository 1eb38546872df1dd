"""What `algorun run` does when its parts fail: a runner killed mid-stream is restarted and loses nothing; an
algo that cannot run is named, with why, and is not restarted forever."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import pytest

from tests.support.local_mode import Receiver, post, processes_with, run_until_idle, running_pipeline, webhook_receiver
from tests.support.paths import EXAMPLES
from tests.support.procs import wait_for

pytestmark = pytest.mark.timeout(300)
TEXT_TRANSFORM = EXAMPLES / "text-transform" / "pipeline.yaml"


@pytest.fixture
def receiver(tmp_path: Path) -> Receiver:  # type: ignore[misc]
    with webhook_receiver(tmp_path) as r:
        yield r


def test_a_runner_killed_mid_stream_is_restarted_and_nothing_is_lost(tmp_path: Path, receiver: Receiver) -> None:
    state = tmp_path / "state"
    count = 60
    pipeline = receiver.examples / "text-transform" / "pipeline.yaml"
    with running_pipeline([pipeline], state, tmp_path / "run.log") as (run, ports):
        url = f"http://127.0.0.1:{ports.http}/demo/text-transform/text"
        texts = [" ".join(["w"] * (n + 1)) for n in range(count)]  # n+1 words: every word count is distinct

        def send_all() -> None:
            for text in texts:
                post(url, text.encode(), "text/plain")

        sender = threading.Thread(target=send_all)
        sender.start()
        # Kill the word-count runner (not its algo: the runner holds the offsets) once a few results are out.
        wait_for(lambda: len(receiver.deliveries()) >= 6, timeout=60, what="the first results")
        (runner,) = processes_with(f"{state}/configs/runner-demo-wordcount")
        os.kill(runner, signal.SIGKILL)
        sender.join(timeout=120)
        expected_counts = {n + 1 for n in range(count)}

        def word_counts() -> set[int]:
            bodies = [d["body"] for d in receiver.deliveries() if d["contentType"] == "application/json"]
            return {json.loads(b)["words"] for b in bodies}

        wait_for(lambda: word_counts() >= expected_counts, timeout=120, what="every word count after the kill")
        assert word_counts() == expected_counts
        reversed_bodies = {d["body"] for d in receiver.deliveries() if d["contentType"].startswith("text/plain")}
        assert reversed_bodies == {t.upper()[::-1] for t in texts}
        # The supervisor started a second runner process for it.
        restarted = wait_for(lambda: processes_with(f"{state}/configs/runner-demo-wordcount"), timeout=30, what="x")
        assert restarted != [runner]
    assert run.popen.returncode == 0, (tmp_path / "run.log").read_text()  # Ctrl-C drained and exited cleanly
    log = next((state / "logs").glob("runner*wordcount*")).read_text()
    assert log.count("--- algorun: starting") == 2, log


@pytest.mark.parametrize(
    ("command", "why"),
    [
        ("python3 -c \"import sys; print('model file missing', file=sys.stderr); sys.exit(3)\"", "model file missing"),
        ("/nonexistent/bin/uppercase --port 18901", "cannot start '/nonexistent/bin/uppercase'"),
    ],
    ids=["exits-at-once", "cannot-start"],
)
def test_a_broken_algo_is_named_with_why_and_not_restarted_forever(tmp_path: Path, command: str, why: str) -> None:
    state = tmp_path / "state"
    result = run_until_idle([TEXT_TRANSFORM], state, extra=["--algo", f"demo/uppercase={command}"], timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert "algo demo/uppercase:1[1]" in output and why in output, output
    starts = next((state / "logs").glob("algo*uppercase*")).read_text().count("--- algorun: starting")
    assert 1 <= starts <= 5, f"started {starts} times"
