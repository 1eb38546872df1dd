"""`make demo`: run the text-transform pipeline end to end on the embedded log and show what came out.

Starts the webhook receiver, runs `algorun run --until-idle` with input.txt sent to the endpoint path `text`,
then prints the deliveries the receiver got. Exit code: algorun's (0 when everything flowed through).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent


def wait_listening(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
        except urllib.error.HTTPError:
            return  # it answered (501 for GET): it is listening
        except OSError:
            time.sleep(0.1)  # polling a port that is coming up
            continue
        return
    raise SystemExit(f"the webhook receiver did not start on port {port}")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="algorun-demo-") as state, tempfile.TemporaryFile("w+") as received:
        receiver = subprocess.Popen(
            [sys.executable, str(HERE.parent / "webhook_receiver.py"), "--port", "18999"],
            stdout=received,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_listening(18999)
            started = time.monotonic()
            code = subprocess.call(
                [
                    sys.executable,
                    "-m",
                    "algorun.cli.main",
                    "run",
                    str(HERE / "pipeline.yaml"),
                    "--state-dir",
                    state,
                    "--until-idle",
                    "--input",
                    f"text={HERE / 'input.txt'}",
                ]
            )
            elapsed = time.monotonic() - started
        finally:
            receiver.terminate()
            receiver.wait()
        received.seek(0)
        deliveries = [json.loads(line) for line in received if line.strip()]
    print(f"\nThe webhook received {len(deliveries)} deliveries ({elapsed:.1f}s from start to idle):")
    for delivery in deliveries:
        print(f"  [{delivery['contentType']}] {delivery['body']!r}")
    return code if deliveries else (code or 1)


if __name__ == "__main__":
    sys.exit(main())
