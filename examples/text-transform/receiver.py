"""The demo's webhook receiver: prints every delivery the event hook sends it (standard library only).

Run it with `python3 receiver.py --port 18999`; it prints one line per delivery: the traceID, the content type
and the body.
"""

import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        trace = self.headers.get("X-Algorun-Trace-Id") or self.headers.get("traceID") or "?"
        entry = {
            "path": self.path,
            "traceID": trace,
            "contentType": self.headers.get("Content-Type"),
            "body": body.decode("utf-8", errors="replace"),
        }
        print(json.dumps(entry), flush=True)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=18999)
    args = parser.parse_args()
    print(f"receiver listening on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
    ThreadingHTTPServer(("127.0.0.1", args.port), Receiver).serve_forever()
