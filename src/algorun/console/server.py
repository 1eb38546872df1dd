"""The console's HTTP server: the built front end (`static/`) and a JSON API over the watched pipelines.

Every error is a JSON body `{"error": "..."}` with a 4xx/5xx status that the page shows as written; an unexpected
failure is logged here and answered with a plain sentence, never a stack trace.

    GET  /api/pipelines                                   the watched pipelines
    GET  /api/pipelines/{owner}/{name}/graph              nodes and edges
    GET  /api/pipelines/{owner}/{name}/figures            the latest sample (at most one per interval)
    GET  /api/pipelines/{owner}/{name}/node?id=NODE       the side panel of a node
    POST /api/pipelines/{owner}/{name}/send               {"path", "body", "contentType"?}
    POST /api/pipelines/{owner}/{name}/replay             {"node", "traceId"?}
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from algorun.console.source import ActionRefused, PipelineSource

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STATIC = Path(str(resources.files("algorun.console") / "static"))
SOURCES = web.AppKey("sources", dict[str, PipelineSource])


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def _errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ActionRefused as exc:
        return _error(exc.status, str(exc))
    except web.HTTPException as exc:
        if exc.status >= 400 and request.path.startswith("/api/"):
            return _error(exc.status, exc.reason)
        raise
    except Exception:
        log.exception("console: %s %s failed", request.method, request.path)
        return _error(500, f"{request.method} {request.path} failed on the console's side; its log has the details")


def _source(request: web.Request) -> PipelineSource:
    sources = request.app[SOURCES]
    key = f"{request.match_info['owner']}/{request.match_info['name']}"
    if key not in sources:
        known = ", ".join(sorted(sources)) or "none"
        raise ActionRefused(f"no pipeline {key!r} is watched by this console; known: {known}", 404)
    return sources[key]


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ActionRefused(f"the request body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ActionRefused("the request body must be a JSON object")
    return body


def _text(body: dict[str, Any], name: str, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise ActionRefused(f"{name}: a non-empty string is required")
    return value


async def pipelines(request: web.Request) -> web.Response:
    sources = request.app[SOURCES]
    return web.json_response([{"id": key} for key in sorted(sources)])


async def graph(request: web.Request) -> web.Response:
    source = _source(request)
    shown = {**source.graph.to_json(), "pipeline": source.pipeline, "intervalSeconds": source.poller.interval}
    return web.json_response(shown)


async def figures(request: web.Request) -> web.Response:
    return web.json_response(await _source(request).poller.latest())


async def node(request: web.Request) -> web.Response:
    source = _source(request)
    node_id = request.query.get("id")
    if not node_id:
        raise ActionRefused("id: the node's id is required (?id=...)")
    return web.json_response(await source.node_detail(node_id))


async def send(request: web.Request) -> web.Response:
    source = _source(request)
    body = await _body(request)
    path = _text(body, "path")
    text = body.get("body")
    if not isinstance(text, str):
        raise ActionRefused("body: the message to send, as a string, is required")
    answer = await source.send(path or "", text.encode(), _text(body, "contentType", required=False))
    return web.json_response(answer)


async def replay(request: web.Request) -> web.Response:
    source = _source(request)
    body = await _body(request)
    node_id = _text(body, "node")
    trace_id = _text(body, "traceId", required=False)
    return web.json_response(await source.replay(node_id or "", trace_id or None))


async def index(_: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


def make_app(sources: Sequence[PipelineSource]) -> web.Application:
    app = web.Application(middlewares=[_errors_as_json])
    app[SOURCES] = {s.pipeline: s for s in sources}
    app.router.add_get("/", index)
    app.router.add_get("/api/pipelines", pipelines)
    base = "/api/pipelines/{owner}/{name}"
    app.router.add_get(base + "/graph", graph)
    app.router.add_get(base + "/figures", figures)
    app.router.add_get(base + "/node", node)
    app.router.add_post(base + "/send", send)
    app.router.add_post(base + "/replay", replay)
    app.router.add_static("/static/", STATIC, append_version=False)
    return app


class ConsoleServer:
    """Serves the console on `host:port`; when `port` is taken, on a free port instead (a second `algorun run`
    on the same machine still gets its console). `url` says where it ended up."""

    def __init__(self, sources: Sequence[PipelineSource], host: str = "127.0.0.1", port: int = 0) -> None:
        self.sources = list(sources)
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        first = self.sources[0].pipeline if len(self.sources) == 1 else ""
        return f"http://{self.host}:{self.port}/" + (f"#{first}" if first else "")

    async def start(self) -> None:
        self._runner = web.AppRunner(make_app(self.sources), access_log=None)
        await self._runner.setup()
        for port in dict.fromkeys((self.requested_port, 0)):
            try:
                site = web.TCPSite(self._runner, self.host, port)
                await site.start()
            except OSError:
                if port == 0:
                    raise
                continue
            server = site._server
            sockets: list[socket.socket] = list(getattr(server, "sockets", None) or [])
            self.port = sockets[0].getsockname()[1] if sockets else port
            return

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
