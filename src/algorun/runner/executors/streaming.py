"""The `Executable` executor in streaming mode: one long-lived process exchanging length-delimited frames on
stdin/stdout, for throughput (no fork/exec per message). Frame format (docs/runner.md):

    request  (runner -> algo):  u32 big-endian length N, then N bytes (the run's parts, concatenated)
    response (algo -> runner):  u8 status, u32 big-endian length N, then N bytes
                                status 0: output (to the first StdOut output), 1: error (UTF-8 message),
                                2: done without output (N = 0)

Responses come in request order; up to `stream_window` requests are in flight. If the process dies, the request
at the head fails (it was being processed) and the others are rerun on a fresh process; a request over the
timeout fails and the process is restarted. stderr is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
from collections import deque
from dataclasses import dataclass, field

from algorun.api.configs import RunnerConfig
from algorun.api.enums import OutputDeliveryType
from algorun.runner.config import RunnerOptions
from algorun.runner.executors.base import Executor
from algorun.runner.executors.executable import base_argv, kill_group
from algorun.runner.model import AlgoFailure, AlgoUnavailable, Output, Request

log = logging.getLogger(__name__)
_HEAD = struct.Struct(">BI")
_LEN = struct.Struct(">I")
MAX_FRAME = 1 << 30
RESTART_BACKOFF_S = (0.1, 0.5, 1.0, 2.0, 5.0)

OK, ERROR, EMPTY = 0, 1, 2


def encode_request(payload: bytes) -> bytes:
    return _LEN.pack(len(payload)) + payload


def encode_response(status: int, payload: bytes = b"") -> bytes:
    return _HEAD.pack(status, len(payload)) + payload


@dataclass(eq=False)
class _Child:
    """One algo process and the requests it owes a response, in order."""

    proc: asyncio.subprocess.Process
    waiting: deque[asyncio.Future[tuple[int, bytes]]] = field(default_factory=deque)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    timed_out: bool = False


class StreamingExecutor(Executor):
    """Feeds runs to one long-lived process as frames and matches its responses in request order (module
    docstring); when the process ends, the run it was on fails and the others rerun on a fresh process."""

    def __init__(self, config: RunnerConfig, options: RunnerOptions) -> None:
        super().__init__(config)
        if not config.entrypoint:
            raise ValueError("an Executable algo needs the version's entrypoint")
        self._argv = base_argv(config.entrypoint, config.parameters)
        self._cwd = options.workdir
        self._timeout = float(config.timeout_seconds) if config.timeout_seconds else None
        self._window = asyncio.Semaphore(options.stream_window)
        out = self.output_for(OutputDeliveryType.STD_OUT, OutputDeliveryType.HTTP_RESPONSE)
        self._output = out.name if out else None
        self._child: _Child | None = None
        self._children: set[_Child] = set()
        self._lock = asyncio.Lock()
        self._failures = 0
        self._last_error: str | None = None

    async def start(self) -> None:
        await self._ensure()

    async def check(self) -> str | None:
        child = self._child
        if child is None or child.proc.returncode is not None:
            with contextlib.suppress(AlgoUnavailable):  # the readiness poll also (re)starts the process
                await self._ensure()
            return f"algo process not running{': ' + self._last_error if self._last_error else ''}"
        return None

    async def _ensure(self) -> _Child:
        child = self._child
        if child is not None and child.proc.returncode is None:
            return child
        async with self._lock:
            child = self._child
            if child is not None and child.proc.returncode is None:
                return child
            if self._failures:
                await asyncio.sleep(RESTART_BACKOFF_S[min(self._failures, len(RESTART_BACKOFF_S)) - 1])
            env = {**os.environ, "ALGORUN_STREAMING": "1"}
            try:
                proc = await asyncio.create_subprocess_exec(
                    *self._argv,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    env=env,
                    cwd=self._cwd,
                    start_new_session=True,
                    limit=1 << 20,
                )
            except (FileNotFoundError, PermissionError) as e:
                self._failures += 1
                self._last_error = str(e)
                raise AlgoUnavailable(f"cannot start {self._argv[0]!r}: {e}") from e
            child = _Child(proc)
            child.tasks = [
                asyncio.create_task(self._read(child), name="algorun-stream-reader"),
                asyncio.create_task(self._drain_stderr(proc), name="algorun-stream-stderr"),
            ]
            self._child = child
            self._children.add(child)
            return child

    async def _read(self, child: _Child) -> None:
        stdout = child.proc.stdout
        assert stdout is not None
        problem: str | None = None
        try:
            while True:
                head = await stdout.readexactly(_HEAD.size)
                status, length = _HEAD.unpack(head)
                if length > MAX_FRAME:
                    raise ValueError(f"response frame of {length} bytes")
                body = await stdout.readexactly(length) if length else b""
                if not child.waiting:
                    raise ValueError("a response frame nobody asked for")
                fut = child.waiting.popleft()
                if not fut.done():
                    fut.set_result((status, body))
                self._failures = 0
        except asyncio.IncompleteReadError:
            pass
        except (ValueError, ConnectionError) as e:
            problem = f"broke the frame protocol ({e})"
        await self._lost(child, problem)

    async def _lost(self, child: _Child, problem: str | None) -> None:
        """The process ended: the request at the head fails (it was being processed, unless a timeout already
        failed it), the others run again on a new process."""
        kill_group(child.proc)
        code = await child.proc.wait()
        if self._child is child:
            self._child = None
        self._children.discard(child)
        reason = problem or f"exited with status {code}"
        if not child.timed_out:
            self._failures += 1
            self._last_error = reason
            log.warning("streaming algo %s; restarting", reason)
        first = not child.timed_out
        while child.waiting:
            fut = child.waiting.popleft()
            if fut.done():
                continue
            if first:
                fut.set_exception(AlgoFailure(f"{self._argv[0]} {reason} while processing this message", "Crash"))
                first = False
            else:
                fut.set_exception(AlgoUnavailable(f"{self._argv[0]} restarted"))

    async def _drain_stderr(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        with contextlib.suppress(Exception):
            while line := await proc.stderr.readline():
                log.warning("algo stderr: %s", line.decode("utf-8", "replace").rstrip(), extra={"source": "algo"})

    async def run(self, request: Request) -> list[Output]:
        async with self._window:
            child = await self._ensure()
            stdin = child.proc.stdin
            assert stdin is not None
            fut: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
            payload = request.parts[0].data if len(request.parts) == 1 else b"".join(p.data for p in request.parts)
            child.waiting.append(fut)
            try:
                stdin.write(encode_request(payload))
                await stdin.drain()
            except (ConnectionError, RuntimeError) as e:
                if not fut.done():
                    fut.set_exception(AlgoUnavailable(f"{self._argv[0]}: stdin closed ({e})"))
            try:
                status, body = await asyncio.wait_for(asyncio.shield(fut), self._timeout)
            except TimeoutError:
                with contextlib.suppress(ValueError):
                    child.waiting.remove(fut)
                fut.cancel()
                child.timed_out = True
                if self._child is child:
                    self._child = None  # the next request starts a fresh process at once
                kill_group(child.proc)
                raise AlgoFailure(f"{self._argv[0]} gave no response within {self._timeout}s", "Timeout") from None
        if status == ERROR:
            raise AlgoFailure(body.decode("utf-8", "replace") or "the algo reported an error", "AlgoError")
        if status == EMPTY or self._output is None:
            return []
        return [Output(self._output, body)]

    async def close(self) -> None:
        for child in list(self._children):
            proc = child.proc
            if proc.returncode is None:
                assert proc.stdin is not None
                with contextlib.suppress(Exception):
                    proc.stdin.close()
                try:
                    await asyncio.wait_for(proc.wait(), 5)
                except TimeoutError:
                    kill_group(proc)
            for t in child.tasks:
                t.cancel()
            await asyncio.gather(*child.tasks, return_exceptions=True)
