"""An HTTP algo: POST /uppercase returns the request body upper-cased."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # examples/, for the shared http_algo server
from http_algo import serve


def uppercase(query: dict[str, str], body: bytes) -> tuple[int, bytes]:
    return 200, body.decode("utf-8", errors="replace").upper().encode()


if __name__ == "__main__":
    serve({"/uppercase": uppercase}, default_port=18901)
