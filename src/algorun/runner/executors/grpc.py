"""The `grpc` executor: the algo serves `algorun.runner.v1.Algo` (proto/algorun_runner.proto) on
localhost:{input.grpc.port}. `unary` mode makes one `Process` call per run; `stream` mode multiplexes runs over
one `ProcessStream` call (Python gRPC is much faster streaming than unary), reconnecting when it breaks."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc

from algorun.api.configs import RunnerConfig
from algorun.runner.config import RunnerOptions
from algorun.runner.executors.base import Executor
from algorun.runner.model import AlgoFailure, AlgoUnavailable, Output, Request
from algorun.runner.proto import algorun_runner_pb2 as _pb
from algorun.runner.proto import algorun_runner_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)
pb: Any = _pb  # generated: message classes are created at import time, unknown to mypy
DEFAULT_TIMEOUT_S = 10.0
_UNAVAILABLE = {grpc.StatusCode.UNAVAILABLE}
MAX_MESSAGE = 256 * 1024 * 1024


def to_proto(request: Request, request_id: int = 0) -> Any:
    return pb.ProcessRequest(
        id=request_id,
        trace_id=request.trace_id,
        input=request.input.name,
        parts=[
            pb.Part(data=p.data, content_type=p.content_type or "", file_name=p.file_name or "") for p in request.parts
        ],
        parameters={p.name: p.value or "" for p in request.parameters},
        endpoint_params=request.endpoint_params or "",
        headers=request.headers,
    )


class GrpcExecutor(Executor):
    """Calls the algo's gRPC server on its one port: one call per run (`unary`) or every run over one stream
    (`stream`), reconnecting when the stream breaks."""

    def __init__(self, config: RunnerConfig, options: RunnerOptions, host: str = "127.0.0.1") -> None:
        super().__init__(config)
        ports = {i.grpc.port for i in config.inputs if i.grpc is not None and i.grpc.port}
        if len(ports) != 1:
            raise ValueError("the grpc executor needs inputs with one grpc.port (the algo's server)")
        self._address = f"{host}:{ports.pop()}"
        self._timeout = float(config.timeout_seconds) if config.timeout_seconds else DEFAULT_TIMEOUT_S
        self._mode = options.grpc_mode
        self._channel: grpc.aio.Channel | None = None
        self._stub: Any = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._queue: asyncio.Queue[Any] | None = None
        self._stream_task: asyncio.Task[None] | None = None
        self._outputs = [o.name for o in config.outputs]

    async def start(self) -> None:
        options = [("grpc.max_send_message_length", MAX_MESSAGE), ("grpc.max_receive_message_length", MAX_MESSAGE)]
        self._channel = grpc.aio.insecure_channel(self._address, options=options)
        self._stub = pb_grpc.AlgoStub(self._channel)  # type: ignore[no-untyped-call]

    async def check(self) -> str | None:
        assert self._channel is not None
        try:
            await asyncio.wait_for(self._channel.channel_ready(), 1.0)
        except (TimeoutError, grpc.aio.AioRpcError) as e:
            return f"algo gRPC server not reachable at {self._address} ({e.__class__.__name__})"
        return None

    async def run(self, request: Request) -> list[Output]:
        if self._mode == "stream":
            response = await self._run_stream(request)
        else:
            try:
                response = await self._stub.Process(to_proto(request), timeout=self._timeout)
            except grpc.aio.AioRpcError as e:
                raise self._error(e) from e
        return self._outputs_of(response, request)

    def _error(self, e: grpc.aio.AioRpcError) -> Exception:
        code = e.code()
        if code in _UNAVAILABLE:
            return AlgoUnavailable(f"{self._address}: {e.details()}")
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return AlgoFailure(f"{self._address}: no response within {self._timeout}s", "Timeout")
        return AlgoFailure(f"{self._address}: {code.name}: {e.details()}", f"Grpc{code.name.title().replace('_', '')}")

    def _outputs_of(self, response: Any, request: Request) -> list[Output]:
        if response.error:
            raise AlgoFailure(response.error, "AlgoError")
        outputs = []
        for o in response.outputs:
            name = o.name or (self._outputs[0] if self._outputs else "")
            if name not in self._outputs:
                raise AlgoFailure(f"the algo answered unknown output {name!r}; known: {self._outputs}", "BadResult")
            outputs.append(Output(name, o.data, content_type=o.content_type or None, file_name=o.file_name or None))
        return outputs

    # ---- stream mode ----

    async def _run_stream(self, request: Request) -> Any:
        self._ensure_stream()
        assert self._queue is not None
        rid = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        self._queue.put_nowait(to_proto(request, rid))
        try:
            return await asyncio.wait_for(fut, self._timeout)
        except TimeoutError:
            raise AlgoFailure(f"{self._address}: no response within {self._timeout}s", "Timeout") from None
        finally:
            self._pending.pop(rid, None)

    def _ensure_stream(self) -> None:
        if self._stream_task is None or self._stream_task.done():
            self._queue = asyncio.Queue()
            self._stream_task = asyncio.create_task(self._stream(self._queue), name="algorun-grpc-stream")

    async def _stream(self, queue: asyncio.Queue[Any]) -> None:
        async def requests() -> AsyncIterator[Any]:
            while True:
                yield await queue.get()

        call = self._stub.ProcessStream(requests())
        try:
            async for response in call:
                fut = self._pending.get(response.id)
                if fut is not None and not fut.done():
                    fut.set_result(response)
            failure: Exception = AlgoUnavailable(f"{self._address}: the stream ended")
        except grpc.aio.AioRpcError as e:
            failure = self._error(e)
            if isinstance(failure, AlgoFailure):
                failure = AlgoUnavailable(f"{self._address}: stream broke: {e.details()}")
        except asyncio.CancelledError:
            call.cancel()
            raise
        for fut in list(self._pending.values()):
            if not fut.done():
                fut.set_exception(failure)

    async def close(self) -> None:
        if self._stream_task is not None:
            self._stream_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._stream_task
        if self._channel is not None:
            await self._channel.close()
