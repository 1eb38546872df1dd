"""The examples' webhook receiver: prints every delivery an event hook sends it (standard library only).

Run it with `python3 examples/webhook_receiver.py --port 18999`; it prints one JSON line per delivery: the
request path, the traceID, the content type, every header and the body. It answers 200 to every POST. It listens
on 127.0.0.1 unless `--host` names another address of this machine (one a cluster's pods can reach).
"""

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_print_lock = threading.Lock()


class Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = dict(self.headers.items())
        entry = {
            "path": self.path,
            "traceID": self.headers.get("X-Algorun-Trace-Id") or self.headers.get("traceID"),
            "contentType": self.headers.get("Content-Type"),
            "headers": headers,
            "body": body.decode("utf-8", errors="replace"),
        }
        # Deliveries arrive on several threads at once: one line per delivery, never two interleaved.
        with _print_lock:
            sys.stdout.write(json.dumps(entry) + "\n")
            sys.stdout.flush()
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18999)
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Receiver)
    print(f"receiver listening on {args.host}:{args.port}", file=sys.stderr, flush=True)
    server.serve_forever()
