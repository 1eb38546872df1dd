"""An S3-compatible server for tests: moto's server mode (PyPI `moto[server]`), in its own process.

It speaks the S3 REST API over plain HTTP on a free port and keeps everything in memory, which is what the
operator's S3 data connectors and artifact storage need in tests: buckets, put/get/list/delete/head, multipart
uploads, ranged GETs, presigned URLs, versioning.

What it does not emulate (do not write tests that depend on these): real authentication (any access key and
secret are accepted, signatures are not checked), IAM and bucket policies being enforced, TLS (unless started
with --ssl; we do not), read-after-write timing, server-side encryption with real keys, S3 event
notifications to other services, object lock enforcement, request rate limits, and durability (a restart
loses all data). For those, a MinIO binary would be needed.
"""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.procs import ManagedProcess, free_port, wait_for

REGION = "us-east-1"


@dataclass
class S3Server:
    """A running S3 endpoint and the (fake) credentials to use with it."""

    endpoint_url: str
    process: ManagedProcess
    access_key_id: str = "testbed-access-key"
    secret_access_key: str = "testbed-secret-key"  # moto accepts any credentials
    region: str = REGION
    start_seconds: float = 0.0

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for botocore/aiobotocore `create_client("s3", **kwargs)`."""
        return {
            "endpoint_url": self.endpoint_url,
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
            "region_name": self.region,
        }

    def stop(self) -> None:
        self.process.stop()


def moto_available() -> str | None:
    """None, or why the S3 server cannot run (moto[server] is a dev dependency)."""
    try:
        import flask  # noqa: F401  - server mode needs Flask/Werkzeug (the [server] extra)
        import moto.server  # noqa: F401
    except ImportError as exc:
        return f"moto[server] is not installed in this Python ({exc}); run `make .venv/.dev-stamp`"
    return None


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/moto-api/", timeout=2) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_s3(workdir: Path, *, timeout: float = 60.0) -> S3Server:
    started = time.monotonic()
    port = free_port()
    proc = ManagedProcess(
        "moto-s3",
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        workdir / "moto.log",
        env={"AWS_DEFAULT_REGION": REGION},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _up(url), timeout=timeout, what="moto server", proc=proc)
    except BaseException:
        proc.stop()
        raise
    return S3Server(endpoint_url=url, process=proc, start_seconds=time.monotonic() - started)
