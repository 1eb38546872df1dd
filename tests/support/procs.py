"""Subprocess plumbing for the test bed: free ports, servers that always die with the test run, polling.

Every server is started in its own session (so a Ctrl-C in the terminal reaches pytest first, which then
tears the servers down in order) and with PR_SET_PDEATHSIG on Linux (so even a SIGKILLed pytest leaves no
stray JVM or apiserver behind). Stopping is SIGTERM to the whole process group, then SIGKILL after a grace
period. Every started process is also registered with atexit as a last resort.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

_LIVE: set[ManagedProcess] = set()
_LIVE_LOCK = threading.Lock()


class StartError(RuntimeError):
    """A test-bed server did not start; the message carries the tail of its log."""


def free_ports(count: int) -> list[int]:
    """Return `count` distinct free TCP ports on 127.0.0.1.

    All sockets are held open until every port is chosen, so one call never returns the same port twice.
    Another process could still take a port before the server binds it; servers that fail to bind show
    that in their log and the fixture fails with it.
    """
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port() -> int:
    """One free TCP port on 127.0.0.1 (see free_ports)."""
    return free_ports(1)[0]


def tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a log file, or a note that it does not exist."""
    try:
        data = path.read_bytes()
    except OSError:
        return f"(no log at {path})"
    text = data[-64_000:].decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def die_with_parent() -> None:
    """A `preexec_fn`: runs in the child before exec and asks Linux to SIGKILL it when the parent (pytest) dies.

    Linux sends the signal when the *thread* that started the child ends: start children from pytest's main
    thread (as every helper here does), not from a worker thread that may finish first."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


class ManagedProcess:
    """A server subprocess whose stdout/stderr go to a log file and which is always stopped."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "ab")  # noqa: SIM115 - lives as long as the process
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        self.started_at = time.monotonic()
        self.popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
        )
        with _LIVE_LOCK:
            _LIVE.add(self)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)

    def failure(self, what: str) -> StartError:
        """A StartError naming this process, its exit status and the tail of its log."""
        status = "running" if self.alive() else f"exited with {self.popen.returncode}"
        return StartError(
            f"{self.name}: {what} ({status}); log {self.log_path}, last lines:\n{self.tail()}",
        )

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the process group, wait up to `grace` seconds, then SIGKILL it."""
        try:
            if self.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGTERM)
                try:
                    self.popen.wait(grace)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(self.popen.pid, signal.SIGKILL)
                    self.popen.wait(5)
            # Children the server forked itself (none expected) go with the group.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGKILL)
        finally:
            self._log.close()
            with _LIVE_LOCK:
                _LIVE.discard(self)


def stop_all() -> None:
    """Stop every process still running; registered with atexit."""
    with _LIVE_LOCK:
        procs = list(_LIVE)
    for p in procs:
        with contextlib.suppress(Exception):
            p.stop(grace=3.0)


atexit.register(stop_all)


def wait_for(
    check: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    proc: ManagedProcess | None = None,
    interval: float = 0.1,
) -> T:
    """Poll `check` until it returns something other than None/False, or fail with the process's log tail.

    `check` may raise: the last exception is reported if the timeout passes. If `proc` exits meanwhile the
    wait ends at once (a dead server never becomes ready).
    """
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            result = check()
        except Exception as exc:
            last_exc = exc
        else:
            if result is not None and result is not False:
                return result
        if proc is not None and not proc.alive():
            raise proc.failure(f"exited while waiting for {what}")
        if time.monotonic() > deadline:
            detail = f"timed out after {timeout:.0f}s waiting for {what}"
            if last_exc is not None:
                detail += f" (last error: {last_exc!r})"
            if proc is not None:
                raise proc.failure(detail)
            raise StartError(detail)
        time.sleep(interval)
