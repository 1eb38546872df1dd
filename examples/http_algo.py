"""A tiny JSON-over-HTTP server for the example algos (standard library only).

Each example's HTTP algo declares its routes as functions from the request (path, query, body) to a status and
a reply; this module does the serving, so the algos stay a few lines each. A GET on any path answers 200, which
is what local mode's readiness probe and a Kubernetes probe need. SIGTERM stops it at once: in a container it is
process 1, which gets no default handler, so without one a pod would wait out its whole grace period.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Route = Callable[[dict[str, str], bytes], tuple[int, Any]]
"""(query parameters, body) -> (HTTP status, a JSON-able reply or bytes)."""


def serve(routes: dict[str, Route], default_port: int) -> None:
    """Serve `routes` (POST) on 127.0.0.1 at --port (default `default_port`) until killed."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=default_port)
    port = parser.parse_args().port

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            route = routes.get(url.path)
            if route is None:
                self._reply(404, {"error": f"no route {url.path}"})
                return
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            try:
                status, reply = route(query, body)
            except (ValueError, KeyError, TypeError) as e:  # a bad request body
                status, reply = 400, {"error": str(e)}
            self._reply(status, reply)

        def do_GET(self) -> None:
            self._reply(200, b"")

        def _reply(self, status: int, reply: Any) -> None:
            is_bytes = isinstance(reply, bytes)
            data = reply if is_bytes else json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8" if is_bytes else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
