"""Supervises the local processes of a pipeline: start, watch readiness, restart crashes with backoff, give up
on a crash loop (saying which component and why), and shut down in an order that loses nothing.

Shutdown order: the endpoint first (no new data is accepted), then runners and the hook runner (each drains:
stops consuming, finishes in-flight work, commits), then the algo servers they were calling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import aiohttp

from algorun.api import naming
from algorun.local.plan import Kind, ProcessSpec

log = logging.getLogger(__name__)


class State(StrEnum):
    STARTING = "starting"
    READY = "ready"
    FAILING = "failing"
    RESTARTING = "restarting"
    FAILED = "failed"
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass
class ProcessStatus:
    spec: ProcessSpec
    log_path: Path
    state: State = State.STARTING
    restarts: int = 0
    pid: int | None = None
    last_exit: int | None = None
    reason: str | None = None
    failures: deque[float] = field(default_factory=lambda: deque(maxlen=16))


@dataclass
class RestartPolicy:
    initial_backoff: float = 0.5
    max_backoff: float = 20.0
    crash_loop_failures: int = 5
    """This many failures within `crash_loop_window` seconds and the component is given up on."""
    crash_loop_window: float = 60.0
    ready_poll: float = 0.25
    min_uptime: float = 1.0
    """A process with no readiness check is ready after staying up this long."""


_STOP_ORDER = {Kind.ENDPOINT: 0, Kind.RUNNER: 1, Kind.HOOK: 1, Kind.ALGO: 2}


class Supervisor:
    def __init__(self, specs: list[ProcessSpec], log_dir: Path, policy: RestartPolicy | None = None) -> None:
        self.policy = policy or RestartPolicy()
        log_dir.mkdir(parents=True, exist_ok=True)
        self.statuses = [ProcessStatus(spec, log_dir / f"{naming.object_name(spec.name)}.log") for spec in specs]
        self._procs: dict[str, asyncio.subprocess.Process] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self.changed = asyncio.Event()
        """Set whenever some status changes (the view and waiters clear it)."""

    def status(self, name: str) -> ProcessStatus:
        return next(s for s in self.statuses if s.spec.name == name)

    async def start(self) -> None:
        for status in self.statuses:
            self._tasks.append(asyncio.create_task(self._keep_running(status), name=f"supervise {status.spec.name}"))

    def failed(self) -> list[ProcessStatus]:
        return [s for s in self.statuses if s.state == State.FAILED]

    def all_ready(self) -> bool:
        return all(s.state == State.READY for s in self.statuses)

    async def wait_ready(self, timeout: float) -> bool:  # noqa: ASYNC109 - a deadline on a multi-step wait
        """True once every process is ready; False as soon as one has failed for good, or at `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            self.changed.clear()  # before looking, so a change between the look and the wait is not lost
            if self.all_ready():
                return True
            if self.failed():
                return False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self.changed.wait()

    def tail(self, status: ProcessStatus, lines: int = 15) -> list[str]:
        """The last lines a process wrote (its log file), for showing why it failed."""
        try:
            with status.log_path.open("rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 16384))
                text = f.read().decode("utf-8", errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if line.strip()][-lines:]

    def _set(self, status: ProcessStatus, state: State, reason: str | None = None) -> None:
        status.state = state
        if reason is not None:
            status.reason = reason
        self.changed.set()

    async def _keep_running(self, status: ProcessStatus) -> None:
        spec = status.spec
        while not self._stopping:
            with status.log_path.open("ab") as log_file:
                log_file.write(f"--- algorun: starting {spec.name} ({' '.join(spec.argv)})\n".encode())
                log_file.flush()
                try:
                    proc = await asyncio.create_subprocess_exec(
                        *spec.argv,
                        cwd=spec.cwd,
                        env={**os.environ, **spec.env},
                        stdin=asyncio.subprocess.DEVNULL,
                        stdout=log_file,
                        stderr=asyncio.subprocess.STDOUT,
                        start_new_session=True,
                    )
                except OSError as exc:
                    # A command that cannot even start will not start on a retry either.
                    self._set(status, State.FAILED, f"cannot start {spec.argv[0]!r}: {exc.strerror or exc}")
                    return
            self._procs[spec.name] = proc
            status.pid = proc.pid
            self._set(status, State.STARTING)
            ready_task = asyncio.create_task(self._watch_ready(status, proc))
            code = await proc.wait()
            ready_task.cancel()
            status.last_exit = code
            if self._stopping:
                self._set(status, State.STOPPED)
                return
            now = time.monotonic()
            status.failures.append(now)
            recent = [t for t in status.failures if now - t <= self.policy.crash_loop_window]
            tail = self.tail(status, 3)
            reason = f"exited with {_describe_exit(code)}" + (f": {tail[-1]}" if tail else "")
            if len(recent) >= self.policy.crash_loop_failures:
                self._set(
                    status, State.FAILED, f"{reason} ({len(recent)} failures in {self.policy.crash_loop_window:.0f}s)"
                )
                return
            delay = min(self.policy.initial_backoff * 2 ** (len(recent) - 1), self.policy.max_backoff)
            self._set(status, State.RESTARTING, reason)
            log.warning("%s %s; restarting in %.1fs", spec.name, reason, delay)
            await asyncio.sleep(delay)  # backoff between restarts, not synchronisation
            status.restarts += 1

    async def _watch_ready(self, status: ProcessStatus, proc: asyncio.subprocess.Process) -> None:
        url = status.spec.ready_url
        if url is None:
            await self._watch_started(status, proc)
            return
        timeout = aiohttp.ClientTimeout(total=2)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while proc.returncode is None:
                ready = False
                with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
                    async with session.get(url) as response:
                        ready = response.status < 300
                if ready != (status.state == State.READY):
                    self._set(status, State.READY if ready else State.STARTING)
                await asyncio.sleep(self.policy.ready_poll if not ready else 1.0)  # polling a probe

    async def _watch_started(self, status: ProcessStatus, proc: asyncio.subprocess.Process) -> None:
        """No readiness endpoint: ready once its TCP port accepts connections, or once it has stayed up for
        `min_uptime` (a process that exits at once is never reported ready)."""
        port = status.spec.ready_port
        started = time.monotonic()
        while proc.returncode is None:
            if port is not None:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    await asyncio.sleep(self.policy.ready_poll)  # polling a port
                    continue
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                self._set(status, State.READY)
                return
            remaining = self.policy.min_uptime - (time.monotonic() - started)
            if remaining <= 0:
                self._set(status, State.READY)
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await proc.wait()

    async def stop(self, grace: float = 15.0) -> None:
        """Stop everything in order; a process that has not exited after `grace` seconds is killed."""
        self._stopping = True
        for rank in sorted(set(_STOP_ORDER.values())):
            batch = [s for s in self.statuses if _STOP_ORDER[s.spec.kind] == rank]
            await asyncio.gather(*(self._stop_one(s, grace) for s in batch))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def kill(self, name: str) -> None:
        """Kill one process hard (SIGKILL), as a crash would; the supervisor restarts it."""
        proc = self._procs.get(name)
        if proc is not None and proc.returncode is None:
            _signal_group(proc, signal.SIGKILL)

    async def _stop_one(self, status: ProcessStatus, grace: float) -> None:
        proc = self._procs.get(status.spec.name)
        if proc is None or proc.returncode is not None:
            if status.state not in (State.FAILED,):
                self._set(status, State.STOPPED)
            return
        self._set(status, State.STOPPING)
        _signal_group(proc, signal.SIGTERM)
        try:
            async with asyncio.timeout(grace):
                await proc.wait()
        except TimeoutError:
            log.warning("%s did not stop within %.0fs; killing it", status.spec.name, grace)
            _signal_group(proc, signal.SIGKILL)
            await proc.wait()
        self._set(status, State.STOPPED)


def _signal_group(proc: asyncio.subprocess.Process, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"
