"""The supervisor against real child processes: restarts with backoff, gives up on crash loops and on
commands that cannot start (naming why), reports readiness, and stops everything."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable
from pathlib import Path

from algorun.local.plan import Kind, ProcessSpec
from algorun.local.supervisor import RestartPolicy, State, Supervisor

FAST = RestartPolicy(initial_backoff=0.01, max_backoff=0.05, crash_loop_failures=3, crash_loop_window=30)


async def until(supervisor: Supervisor, condition: Callable[[], bool], timeout: float = 30) -> None:  # noqa: ASYNC109
    """Wait for a condition on the supervisor's statuses, waking on each status change."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        supervisor.changed.clear()  # before looking, so no change is missed
        if condition():
            return
        remaining = deadline - asyncio.get_running_loop().time()
        assert remaining > 0, "condition not reached in time"
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(supervisor.changed.wait(), remaining)


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


async def test_crash_loop_is_given_up_with_the_reason(tmp_path: Path) -> None:
    spec = ProcessSpec(
        "algo broken", Kind.ALGO, python("import sys; print('model file missing'); sys.exit(3)"), tmp_path
    )
    supervisor = Supervisor([spec], tmp_path / "logs", FAST)
    await supervisor.start()
    assert not await supervisor.wait_ready(timeout=20)
    (status,) = supervisor.failed()
    assert status.restarts == 2
    assert status.reason is not None and "code 3" in status.reason and "model file missing" in status.reason
    assert "model file missing" in "\n".join(supervisor.tail(status))
    await supervisor.stop()


async def test_command_that_cannot_start_fails_at_once(tmp_path: Path) -> None:
    spec = ProcessSpec("algo missing", Kind.ALGO, ["./no-such-program", "--x"], tmp_path)
    supervisor = Supervisor([spec], tmp_path / "logs", FAST)
    await supervisor.start()
    assert not await supervisor.wait_ready(timeout=20)
    (status,) = supervisor.failed()
    assert status.restarts == 0 and status.reason is not None and "cannot start './no-such-program'" in status.reason
    await supervisor.stop()


async def test_ready_probe_kill_restart_and_stop(tmp_path: Path) -> None:
    server = (
        "import http.server, sys\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers()\n"
        "    def log_message(self, *a): pass\n"
        "http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()\n"
    )
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = ProcessSpec(
        "runner x",
        Kind.RUNNER,
        [sys.executable, "-c", server, str(port)],
        tmp_path,
        ready_url=f"http://127.0.0.1:{port}/ready",
    )
    idle = ProcessSpec("algo idle", Kind.ALGO, python("import time; time.sleep(600)"), tmp_path)
    supervisor = Supervisor([spec, idle], tmp_path / "logs", FAST)
    await supervisor.start()
    assert await supervisor.wait_ready(timeout=30)
    await supervisor.kill("runner x")
    status = supervisor.status("runner x")
    await until(supervisor, lambda: status.restarts == 1 and status.state == State.READY)
    assert "signal SIGKILL" in (supervisor.status("runner x").reason or "")
    await supervisor.stop(grace=5)
    assert all(s.state == State.STOPPED for s in supervisor.statuses)
