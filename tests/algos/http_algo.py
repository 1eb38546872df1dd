"""An aiohttp algo: POST /upper answers the body upper-cased (201 for /created, 500 for bodies with "poison").

Run in the test's own event loop (`start_http_algo`), or as a process: `python -m tests.algos.http_algo PORT`.
"""

from __future__ import annotations

import sys

from aiohttp import web


async def upper(request: web.Request) -> web.Response:
    body = await request.read()
    if b"poison" in body:
        return web.Response(status=500, text="poison is not food")
    params = "&".join(f"{k}={v}" for k, v in sorted(request.query.items()))
    suffix = f"?{params}".encode() if request.query and request.headers.get("X-Echo-Query") else b""
    return web.Response(body=body.upper() + suffix, content_type="text/x-upper")


async def created(request: web.Request) -> web.Response:
    return web.Response(status=201, body=await request.read(), content_type="application/octet-stream")


async def echo(request: web.Request) -> web.Response:
    return web.Response(body=await request.read(), content_type="application/octet-stream")


def app() -> web.Application:
    a = web.Application(client_max_size=64 * 1024 * 1024)
    a.router.add_post("/upper", upper)
    a.router.add_post("/created", created)
    a.router.add_post("/echo", echo)
    return a


async def start_http_algo(port: int) -> web.AppRunner:
    runner = web.AppRunner(app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


if __name__ == "__main__":
    web.run_app(app(), host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
