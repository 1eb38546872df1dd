"""The HTTP API (aiohttp): `/{deploymentOwner}/{deploymentName}/{path}[/{traceID}[/upload]]` into Kafka.

A handler answers 202 only after `Publisher.publish` returned, i.e. after the broker (or the write-ahead log)
acknowledged the message, and its body names the traceID and where the message is. Every refusal is a JSON
error (`errors.error_body`) with a meaningful status. A plain POST runs; bodies are limited in size (413 as soon
as the limit is passed, chunked ones included), multipart bodies are split into parts, and the content type is
checked. docs/compat.md lists what differs from Algo.Run's endpoint.

The module is longer than most (about 500 lines): routing, authentication, body reading (plain, chunked and
multipart, with the claim check) and the answers are one `HttpApi`, whose one dispatch function serves every
request without aiohttp's router and middlewares (`benchmarks/endpoint.py`).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import BodyPartReader, StreamReader, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import HttpVersion11, RawRequestMessage
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from algorun.api.configs import EndpointConfig, EndpointPathConfig
from algorun.api.enums import MessageDataType
from algorun.bus import contract
from algorun.bus.interface import Bus
from algorun.endpoint import errors
from algorun.endpoint.auth import API_KEY_HEADER, Credentials
from algorun.endpoint.claimcheck import PayloadStore
from algorun.endpoint.errors import Code, EndpointError
from algorun.endpoint.ingest import (
    Outgoing,
    Route,
    Router,
    build_message,
    check_content_type,
    encode_params,
    media_type,
    split_ingest_path,
)
from algorun.endpoint.metrics import EndpointMetrics
from algorun.endpoint.openapi import openapi_document
from algorun.endpoint.publisher import Accepted, Publisher
from algorun.storage import StorageError
from algorun.telemetry import Readiness
from algorun.telemetry.logs import TRACE_ID

log = logging.getLogger(__name__)

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
OPEN_PATHS = frozenset({"/health", "/ready", "/metrics", "/openapi.json"})
INGEST_METHODS = frozenset({"POST", "PUT"})
READ_METHODS = frozenset({"GET", "HEAD"})
CHUNK = 64 * 1024
TOPICS_TIMEOUT_S = 5.0
JSON = "application/json"


def json_error(err: EndpointError) -> web.Response:
    return web.Response(
        status=err.status,
        body=json.dumps(err.body()).encode(),
        content_type="application/json",
        headers=err.response_headers(),
    )


class HttpApi:
    """The endpoint's HTTP side: one `dispatch` for every request; an ingestion request is answered 202 only
    once `Publisher.publish` stored its message, and every failure is a JSON error (module docstring)."""

    def __init__(
        self,
        config: EndpointConfig,
        publisher: Publisher,
        *,
        bus: Bus | None,
        metrics: EndpointMetrics,
        readiness: Readiness,
        credentials: Credentials,
        max_body_bytes: int,
        max_upload_bytes: int,
        store: PayloadStore | None = None,
    ) -> None:
        self.config = config
        self.router = Router(config)
        self.publisher = publisher
        self.bus = bus
        self.metrics = metrics
        self.readiness = readiness
        self.credentials = credentials
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes
        self.store = store
        self._reads: dict[str, Handler] = {
            "/topics": self.topics,
            "/health": self.health,
            "/ready": self.ready,
            "/metrics": self.prometheus,
            "/openapi.json": self.openapi,
        }
        self._openapi = json.dumps(
            openapi_document(config, max_body_bytes=max_body_bytes, secured=credentials.enabled)
        ).encode()

    def server(self) -> web.Server:
        """aiohttp's low-level server with `dispatch` as its only handler.

        Why not a `web.Application`: its per-request machinery (router resolution over six ingestion patterns,
        match info, the error middleware's two extra coroutines) is a large share of the endpoint's CPU above an
        aiohttp hello-world (`benchmarks/endpoint.py` compares the two). `dispatch` routes with one dict lookup
        or one `split` and turns every failure into the JSON error itself. What an Application would do besides
        is done here: the body size limit (`client_max_size`, in `request`) and `Expect: 100-continue`.
        """
        loop = asyncio.get_running_loop()
        client_max_size = max(self.max_body_bytes, self.max_upload_bytes) + 1024 * 1024

        def request(
            message: RawRequestMessage,
            payload: StreamReader,
            protocol: web.RequestHandler,
            writer: AbstractStreamWriter,
            task: asyncio.Task[None],
        ) -> web.BaseRequest:
            return web.BaseRequest(message, payload, protocol, writer, task, loop, client_max_size=client_max_size)

        return web.Server(self.dispatch, request_factory=request, access_log=None)

    async def dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        """Route, authenticate, handle; every failure becomes a JSON error (never an HTML page or a bare 500)."""
        started = time.monotonic()
        label = "-"  # the metrics' path label: set for ingestion requests only
        status = 500
        try:
            path = request.rel_url.path_safe
            read = self._reads.get(path)
            if read is not None:
                if request.method not in READ_METHODS:
                    raise _not_allowed(request, READ_METHODS)
                if self.credentials.enabled and path not in OPEN_PATHS:
                    self._authenticate(request)
                response = await read(request)
            else:
                if self.credentials.enabled:
                    self._authenticate(request)
                parts = split_ingest_path(path)
                if parts is None:
                    raise EndpointError(404, Code.NOT_FOUND, f"no route {request.path}; see /openapi.json")
                if request.method not in INGEST_METHODS:
                    raise _not_allowed(request, INGEST_METHODS)
                label = parts[2] if parts[2] in self.router.paths else "unknown"
                response = await self.ingest(request, *parts)
            status = response.status
            return response
        except EndpointError as err:
            status = err.status
            return json_error(err)
        except web.HTTPException as exc:
            status = exc.status
            return json_error(_http_exception(exc, request))
        except (asyncio.CancelledError, ConnectionResetError):
            status = 499
            raise
        except Exception:
            log.exception("unexpected error handling %s %s", request.method, request.path)
            return json_error(EndpointError(500, Code.INTERNAL, "internal error (see the endpoint's log)"))
        finally:
            if label != "-":
                self.metrics.answered("http", label, str(status), time.monotonic() - started)

    def _authenticate(self, request: web.BaseRequest) -> None:
        self.credentials.check(request.headers.get("Authorization"), request.headers.get(API_KEY_HEADER))

    # ---- ingestion ----

    async def ingest(
        self, request: web.BaseRequest, owner: str, name: str, path: str, trace_id: str | None, upload: bool
    ) -> web.Response:
        route = self.router.route(owner, name, path, trace_id, upload=upload)
        if "Expect" in request.headers:
            await _continue(request)
        token = TRACE_ID.set(route.trace_id)  # log lines of this request carry its traceID
        try:
            params = list(request.query.items()) if request.query_string else []
            raw_type = request.headers.get("Content-Type")
            if media_type(raw_type) == "multipart/form-data":
                parts, trigger = await self._multipart(request, route, params)
                msgs, accepted = await self._publish_upload(parts, trigger)
            else:
                # An empty body is a trigger: it carries no data whose type could be wrong.
                length = request.content_length
                content_type = raw_type if length == 0 else check_content_type(route.path, raw_type)
                if length is not None and length <= self.max_body_bytes:
                    # The common case, awaited here directly (each coroutine level costs on every request);
                    # an embedded body leaves nothing to clean up if it is refused.
                    msg = self._message(request, route, params, content_type, await request.read(), length)
                    accepted = [await self.publisher.publish(msg)]
                else:
                    value, size, kind = await self._body(request, route.path)
                    msgs = [self._message(request, route, params, content_type, value, size, kind)]
                    accepted = await self._publish(msgs)
        finally:
            TRACE_ID.reset(token)
        if len(accepted) == 1:
            return web.Response(body=_accepted_json(route.trace_id, accepted[0]), status=202, content_type=JSON)
        last = accepted[-1]
        body: dict[str, Any] = {
            "traceID": route.trace_id,
            "topic": last.topic,
            "partition": last.partition,
            "offset": last.offset,
            "storedIn": last.stored,
            "messages": [_summary(msg, acc) for msg, acc in zip(msgs, accepted, strict=True)],
        }
        return web.json_response(body, status=202)

    async def _publish(self, msgs: list[Outgoing]) -> list[Accepted]:
        """Publish in order (all are enqueued before any is awaited, so they keep their order in Kafka); a payload
        uploaded for a message that was not accepted is deleted again."""
        if len(msgs) == 1:
            results: list[Accepted | BaseException] = []
            try:
                results.append(await self.publisher.publish(msgs[0]))
            except BaseException as e:
                results.append(e)
        else:
            results = await asyncio.gather(*(self.publisher.publish(m) for m in msgs), return_exceptions=True)
        failed = [(msg, r) for msg, r in zip(msgs, results, strict=True) if isinstance(r, BaseException)]
        if failed:
            if self.store is not None:
                for msg, _ in failed:
                    if contract.data_type(msg.headers) is contract.MessageDataType.FILE_REFERENCE:
                        await self.store.discard(msg.value)
            raise failed[0][1]
        return [r for r in results if isinstance(r, Accepted)]

    async def _publish_upload(
        self, parts: list[Outgoing], trigger: Outgoing | None
    ) -> tuple[list[Outgoing], list[Accepted]]:
        """Publish a multipart upload's staged parts, then, only once every part is stored, its trigger.

        Why not all at once: the trigger (`run=true`) would be stored even when a part is refused (413, 503),
        and the runner would execute the trace with an input missing while the client was told it failed. A
        refused part raises here before the trigger is sent; the parts already stored are `run=false`, which
        the runner's staging expires. Publishing the trigger after the parts' acknowledgements also keeps it
        behind them in Kafka (same key, so same partition) and in the write-ahead log (later sequence number).
        """
        accepted = await self._publish(parts)
        if trigger is None:
            return parts, accepted
        return [*parts, trigger], [*accepted, await self.publisher.publish(trigger)]

    def _offloads(self, path: EndpointPathConfig) -> bool:
        return self.store is not None and path.message_data_type is MessageDataType.FILE_REFERENCE

    def _hint(self, path: EndpointPathConfig) -> str:
        if path.message_data_type is not MessageDataType.FILE_REFERENCE:
            return " (larger payloads need a path with messageDataType FileReference)"
        return " (larger payloads go to S3 storage, which is not configured)"

    def _message(
        self,
        request: web.BaseRequest,
        route: Route,
        params: list[tuple[str, str]],
        content_type: str | None,
        value: bytes,
        size: int,
        kind: contract.MessageDataType = contract.MessageDataType.EMBEDDED,
    ) -> Outgoing:
        """The message of a (non-multipart) request whose body is `value` (or its reference in storage)."""
        self.metrics.received("http", route.path.name, size)
        return build_message(
            route,
            value,
            content_type=content_type,
            endpoint_params=encode_params(params) if params else None,
            data_type=kind,
            traceparent=request.headers.get("traceparent"),
        )

    async def _body(
        self, request: web.BaseRequest, path: EndpointPathConfig
    ) -> tuple[bytes, int, contract.MessageDataType]:
        """The message value, the body's size and its data type: the body itself, or, for a body over the limit
        on a path that offloads, the reference to it in storage (streamed there, never whole in memory)."""
        length = request.content_length
        if length is not None and length <= self.max_body_bytes:
            return await request.read(), length, contract.MessageDataType.EMBEDDED
        offload = self._offloads(path)
        limit = self.max_upload_bytes if offload else self.max_body_bytes
        if length is not None and length > limit:
            raise errors.too_large(length, limit, "" if offload else self._hint(path))
        chunks = _limited(request.content.iter_chunked(CHUNK), limit, "" if offload else self._hint(path))
        head = bytearray()
        async for chunk in chunks:
            head += chunk
            if len(head) > self.max_body_bytes:
                break
        else:
            return bytes(head), len(head), contract.MessageDataType.EMBEDDED
        assert self.store is not None  # `limit` is max_body_bytes unless the path offloads
        size = [len(head)]

        async def body() -> AsyncIterator[bytes]:
            yield bytes(head)
            async for rest in chunks:
                size[0] += len(rest)
                yield rest

        return await self._store(body()), size[0], contract.MessageDataType.FILE_REFERENCE

    async def _store(self, chunks: AsyncIterable[bytes]) -> bytes:
        assert self.store is not None
        try:
            return await self.store.put_stream(chunks)
        except StorageError as e:
            log.warning("storing a payload failed: %s", e)
            raise EndpointError(503, Code.UPLOAD_FAILED, f"storing the payload failed: {e}", retry_after=5) from e

    async def _multipart(
        self, request: web.BaseRequest, route: Route, params: list[tuple[str, str]]
    ) -> tuple[list[Outgoing], Outgoing | None]:
        """Each file part becomes a staged part (`run=false`, with its `fileName`); the trigger (`run=true`) is
        returned apart, None if the request itself is an `/upload`, so that it can be published only after every
        part was stored (`_publish_upload`). Form fields without a file name become endpoint parameters."""
        offload = self._offloads(route.path)
        limit = self.max_upload_bytes if offload else self.max_body_bytes
        hint = "" if offload else self._hint(route.path)
        files: list[tuple[str, str | None, bytes]] = []
        fields = list(params)
        total = 0
        try:
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader):
                    raise EndpointError(400, Code.BAD_MULTIPART, "nested multipart bodies are not supported")
                data = await _read_part(part, limit - total, hint)
                total += len(data)
                if part.filename is None:
                    if part.name is None:
                        raise EndpointError(400, Code.BAD_MULTIPART, "a form field has no name")
                    fields.append((part.name, data.decode("utf-8", "replace")))
                else:
                    files.append((part.filename, part.headers.get("Content-Type"), data))
        except EndpointError:
            raise
        except (HttpProcessingError, ValueError, AssertionError, LookupError, RuntimeError) as e:
            raise EndpointError(400, Code.BAD_MULTIPART, f"malformed multipart/form-data body: {e}") from e
        if not files:
            raise EndpointError(400, Code.BAD_MULTIPART, "the multipart body has no file part (a part with a filename)")
        self.metrics.received("http", route.path.name, total)
        endpoint_params = encode_params(fields)
        traceparent = request.headers.get("traceparent")
        msgs = []
        kinds = contract.MessageDataType
        for file_name, raw_type, data in files:
            content_type = check_content_type(route.path, raw_type)
            big = len(data) > self.max_body_bytes  # only possible when the path offloads
            msgs.append(
                build_message(
                    route,
                    await self._store(_once(data)) if big else data,
                    run=False,
                    content_type=content_type,
                    endpoint_params=endpoint_params,
                    file_name=file_name,
                    data_type=kinds.FILE_REFERENCE if big else kinds.EMBEDDED,
                    traceparent=traceparent,
                )
            )
        if not route.run:
            return msgs, None
        trigger = build_message(
            route,
            b"",
            run=True,
            content_type=None,
            endpoint_params=endpoint_params,
            data_type=contract.MessageDataType.EMBEDDED,
            traceparent=traceparent,
        )
        return msgs, trigger

    # ---- other routes ----

    async def topics(self, request: web.BaseRequest) -> web.Response:
        if self.bus is None:
            raise EndpointError(503, Code.TOPICS_FAILED, "no broker connection", retry_after=5)
        try:
            async with asyncio.timeout(TOPICS_TIMEOUT_S):
                names = sorted(await self.bus.list_topics())
        except Exception as e:
            raise EndpointError(503, Code.TOPICS_FAILED, f"listing topics failed: {e}", retry_after=5) from e
        return web.Response(text="".join(f"{n}\n" for n in names if not n.startswith("__")))

    async def health(self, request: web.BaseRequest) -> web.Response:
        return web.json_response({"status": "ok"})

    async def ready(self, request: web.BaseRequest) -> web.Response:
        reasons = self.readiness.reasons()
        return web.json_response({"ready": not reasons, "notReady": reasons}, status=503 if reasons else 200)

    async def prometheus(self, request: web.BaseRequest) -> web.Response:
        return web.Response(body=generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def openapi(self, request: web.BaseRequest) -> web.Response:
        return web.Response(body=self._openapi, content_type="application/json")


def _accepted_json(trace_id: str, acc: Accepted) -> bytes:
    """The 202 body of one message, as `json.dumps` would write it, at a tenth of the cost (per request).

    A traceID needs no escaping: it is a new hex UUID or passed `check_trace_id` (letters, digits, `._:-`)."""
    return b'{"traceID": "%s", "topic": %s, "partition": %s, "offset": %s, "storedIn": "%s"}' % (
        trace_id.encode(),
        _json_string(acc.topic),
        b"null" if acc.partition is None else b"%d" % acc.partition,
        b"null" if acc.offset is None else b"%d" % acc.offset,
        acc.stored.encode(),
    )


@functools.lru_cache(maxsize=1024)
def _json_string(text: str) -> bytes:
    """`text` (a topic: there are few) as a JSON string."""
    return json.dumps(text).encode()


async def _continue(request: web.BaseRequest) -> None:
    """Answer `Expect: 100-continue` (curl sends it with bodies over 1 KB, then waits a second for it), once the
    path is known to exist and the client is authenticated; refuse any other expectation with 417."""
    expect = request.headers.get("Expect", "")
    if request.version != HttpVersion11:
        return
    if expect.lower() != "100-continue":
        raise EndpointError(417, Code.BAD_BODY, f"unknown expectation: Expect: {expect}")
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.writer.output_size = 0  # the interim answer is not part of the response's size
    await request.writer.drain()


def _not_allowed(request: web.BaseRequest, allowed: frozenset[str]) -> EndpointError:
    methods = ",".join(sorted(allowed))
    return EndpointError(
        405,
        Code.METHOD_NOT_ALLOWED,
        f"{request.method} is not allowed here (allowed: {methods})",
        headers={"Allow": methods},
    )


def _summary(msg: Outgoing, acc: Accepted) -> dict[str, Any]:
    return {
        "fileName": contract.get(msg.headers, contract.FILE_NAME),
        "run": contract.get(msg.headers, contract.RUN) == "true",
        "partition": acc.partition,
        "offset": acc.offset,
        "storedIn": acc.stored,
    }


def _http_exception(exc: web.HTTPException, request: web.BaseRequest) -> EndpointError:
    if exc.status == 404:
        return EndpointError(404, Code.NOT_FOUND, f"no route {request.path}; see /openapi.json")
    if exc.status == 405:
        allowed = exc.headers.get("Allow", "")
        return EndpointError(
            405,
            Code.METHOD_NOT_ALLOWED,
            f"{request.method} is not allowed here (allowed: {allowed})",
            headers={"Allow": allowed},
        )
    if exc.status == 413:
        return EndpointError(413, Code.TOO_LARGE, "the body is too large")
    return EndpointError(exc.status, Code.BAD_BODY, exc.reason or "bad request")


async def _limited(chunks: AsyncIterator[bytes], limit: int, hint: str) -> AsyncIterator[bytes]:
    """`chunks`, failing with 413 as soon as more than `limit` bytes came (chunked bodies included)."""
    total = 0
    async for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise errors.too_large(None, limit, hint)
        yield chunk


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _read_part(part: BodyPartReader, limit: int, hint: str) -> bytes:
    chunks = []
    total = 0
    while chunk := await part.read_chunk(CHUNK):
        total += len(chunk)
        if total > limit:
            raise errors.too_large(None, limit, hint)
        chunks.append(chunk)
    return b"".join(chunks)
