"""The gRPC API: the original `PipelineEndpoint` service (`Run`, `Upload`, `ListTopics`), wire-compatible.

Each stream is pipelined: requests are published as they arrive (in order, so they keep their order in Kafka)
and answered in order, each `streamOffset` only once the broker (or the write-ahead log) acknowledged that
message. A request that cannot be accepted ends the stream with a gRPC status naming the problem and the
offending `streamOffset`: the first one (in stream order) that was not stored, even if a later request was
refused sooner; every offset answered before it is stored. A request for an unknown owner, name or path ends
its stream with NOT_FOUND; the process goes on serving the others.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator

import grpc

from algorun.api.configs import EndpointConfig
from algorun.api.enums import MessageDataType
from algorun.bus import contract
from algorun.bus.interface import Bus
from algorun.endpoint import errors
from algorun.endpoint.auth import Credentials
from algorun.endpoint.claimcheck import PayloadStore
from algorun.endpoint.errors import Code, EndpointError
from algorun.endpoint.ingest import (
    Outgoing,
    Route,
    Router,
    build_message,
    check_content_type,
    check_trace_id,
    encode_params,
)
from algorun.endpoint.metrics import EndpointMetrics
from algorun.endpoint.pb import pipeline_endpoint_pb2 as pb
from algorun.endpoint.publisher import Accepted, Publisher
from algorun.storage import StorageError

log = logging.getLogger(__name__)

SERVICE = "PipelineEndpoint"
WINDOW = 1024
"""Requests of one stream published but not yet answered; beyond it, reading the stream waits (backpressure)."""

STATUS_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}


def status_for(err: EndpointError) -> grpc.StatusCode:
    return STATUS_CODES.get(err.status, grpc.StatusCode.INTERNAL)


class GrpcApi:
    """The `PipelineEndpoint` servicer: each stream is published in order and each `streamOffset` answered only
    once its message is stored (module docstring)."""

    def __init__(
        self,
        config: EndpointConfig,
        publisher: Publisher,
        *,
        bus: Bus | None,
        metrics: EndpointMetrics,
        credentials: Credentials,
        max_body_bytes: int,
        store: PayloadStore | None = None,
    ) -> None:
        self.router = Router(config)
        self.publisher = publisher
        self.bus = bus
        self.metrics = metrics
        self.credentials = credentials
        self.max_body_bytes = max_body_bytes
        self.store = store
        self._cleanups: set[asyncio.Task[None]] = set()

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Run": grpc.stream_stream_rpc_method_handler(
                    self.run, pb.RunRequest.FromString, pb.RunResponse.SerializeToString
                ),
                "Upload": grpc.stream_stream_rpc_method_handler(
                    self.upload, pb.RunRequest.FromString, pb.RunResponse.SerializeToString
                ),
                "ListTopics": grpc.unary_unary_rpc_method_handler(
                    self.list_topics, pb.Empty.FromString, pb.ListTopicsResponse.SerializeToString
                ),
            },
        )

    # grpc.aio recognises streaming handlers by being async generator functions, hence the re-yield.
    async def run(
        self, requests: AsyncIterator[pb.RunRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.RunResponse]:
        async for response in self._stream(requests, context, run=True):
            yield response

    async def upload(
        self, requests: AsyncIterator[pb.RunRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.RunResponse]:
        async for response in self._stream(requests, context, run=False):
            yield response

    async def list_topics(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> pb.ListTopicsResponse:
        await self._authenticate(context)
        if self.bus is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "no broker connection")
        assert self.bus is not None
        try:
            async with asyncio.timeout(5.0):
                names = sorted(await self.bus.list_topics())
        except Exception as e:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"listing topics failed: {e}")
        return pb.ListTopicsResponse(topics=[n for n in names if not n.startswith("__")])

    def _discard_if_refused(self, reference: bytes, fut: asyncio.Future[Accepted]) -> None:
        """A payload stored for a message that was not accepted is deleted again (best effort)."""
        if self.store is not None and (fut.cancelled() or fut.exception() is not None):
            task = asyncio.get_running_loop().create_task(self.store.discard(reference))
            self._cleanups.add(task)
            task.add_done_callback(self._cleanups.discard)

    async def _authenticate(self, context: grpc.aio.ServicerContext) -> None:
        if not self.credentials.enabled:
            return
        meta = {k.lower(): v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
        try:
            self.credentials.check(meta.get("authorization"), meta.get("x-api-key"))
        except EndpointError as e:
            await context.abort(status_for(e), e.message)

    async def _prepare(self, req: pb.RunRequest, run: bool) -> tuple[str, Outgoing]:
        """The message for one request, or an `EndpointError` (unknown path, bad traceID, too large, ...)."""
        path = self.router.path(req.deploymentOwner, req.deploymentName, req.endpointPath)
        trace_id = check_trace_id(req.traceID) if req.traceID else contract.new_trace_id()
        route = Route(path, trace_id, run=run, caller_trace_id=bool(req.traceID))
        data = req.message
        content_type = req.contentType or None
        kind = contract.MessageDataType.EMBEDDED
        if data:
            content_type = check_content_type(path, content_type)
        if len(data) > self.max_body_bytes:
            if self.store is None or path.message_data_type is not MessageDataType.FILE_REFERENCE:
                raise errors.too_large(len(data), self.max_body_bytes)
            try:
                data = await self.store.put_stream(_once(data))
            except StorageError as e:
                raise EndpointError(503, Code.UPLOAD_FAILED, f"storing the payload failed: {e}", retry_after=5) from e
            kind = contract.MessageDataType.FILE_REFERENCE
        self.metrics.received("grpc", path.name, len(req.message))
        msg = build_message(
            route,
            data,
            content_type=content_type,
            endpoint_params=encode_params(dict(req.parameters)),
            data_type=kind,
        )
        return path.name, msg

    async def _stream(
        self, requests: AsyncIterator[pb.RunRequest], context: grpc.aio.ServicerContext, *, run: bool
    ) -> AsyncIterator[pb.RunResponse]:
        """Publish requests as they arrive; answer them in stream order.

        The reader puts every request into `pending` in order, a refusal (unknown path, bad traceID, too large)
        as an already failed future in the refused request's place, and stops reading. The answering loop takes
        them in that order, so the offset it ends the stream with is the first one not stored, with its own
        status. Why: a refusal comes at once, while an earlier request may still be waiting for the broker and
        fail after it; reporting the refusal then named a later offset than the first one lost, and a client
        resending from the named offset (or dropping requests refused NOT_FOUND) lost the earlier one.
        """
        await self._authenticate(context)
        loop = asyncio.get_running_loop()
        pending: asyncio.Queue[tuple[int, str, float, asyncio.Future[Accepted]] | None] = asyncio.Queue(WINDOW)
        failure: list[tuple[int, EndpointError]] = []

        async def read() -> None:
            offset = 0
            started = time.monotonic()
            try:
                async for req in requests:
                    offset = req.streamOffset
                    started = time.monotonic()
                    name, msg = await self._prepare(req, run)
                    publish = asyncio.ensure_future(self.publisher.publish(msg))
                    if contract.data_type(msg.headers) is contract.MessageDataType.FILE_REFERENCE:
                        publish.add_done_callback(functools.partial(self._discard_if_refused, msg.value))
                    await pending.put((offset, name, started, publish))
            except EndpointError as e:
                refused: asyncio.Future[Accepted] = loop.create_future()
                refused.set_exception(e)
                refused.add_done_callback(_consume)  # not awaited if an earlier request failed first
                await pending.put((offset, "-", started, refused))
            finally:
                await pending.put(None)

        reader = loop.create_task(read())
        try:
            while (item := await pending.get()) is not None:
                offset, name, started, fut = item
                try:
                    await fut
                except EndpointError as e:
                    failure.append((offset, e))
                    break
                self.metrics.answered("grpc", name, "ok", time.monotonic() - started)
                yield pb.RunResponse(streamOffset=offset)
            if not failure:
                await reader
        finally:
            if not reader.done():
                reader.cancel()
            while not pending.empty():  # publishes nobody will answer: they may still land (at-least-once)
                left = pending.get_nowait()
                if left is not None:
                    left[3].add_done_callback(_consume)
        if failure:
            offset, err = failure[0]
            self.metrics.counted("grpc", "-", status_for(err).name.lower())
            await context.abort(status_for(err), f"streamOffset {offset}: {err.message}")


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _consume(fut: asyncio.Future[Accepted]) -> None:
    if not fut.cancelled():
        fut.exception()
