"""Cross-process wake-ups for the local log, so idle consumers sleep instead of polling the file.

Every consumer binds a Unix datagram socket in a directory derived from the log's path; a producer pokes every
socket there after each commit. A lost poke costs at most the consumers' slow fallback poll, never data: the
log is the truth, the pokes are hints. Sockets of dead processes are removed by the producer that finds them.
The directory lives under the temp dir (Unix socket paths are limited to ~108 bytes) and is named by a hash of
the log's real path, so every process using one file finds the same directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import tempfile
import uuid
from collections.abc import Callable


def notify_dir(db_path: str) -> str:
    digest = hashlib.sha256(os.path.realpath(db_path).encode()).hexdigest()[:16]
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return os.path.join(tempfile.gettempdir(), f"algorun-{uid}-{digest}")


class Poker:
    """Sends wake-ups. Cheap when nobody listens: one stat of the directory per call."""

    def __init__(self, db_path: str) -> None:
        self.dir = notify_dir(db_path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._mtime: int | None = None
        self._targets: list[str] = []

    def poke(self) -> None:
        try:
            mtime = os.stat(self.dir).st_mtime_ns
        except FileNotFoundError:
            return
        if mtime != self._mtime:
            self._mtime = mtime
            try:
                self._targets = [os.path.join(self.dir, n) for n in os.listdir(self.dir) if n.endswith(".sock")]
            except FileNotFoundError:
                self._targets = []
        for path in self._targets:
            try:
                self._sock.sendto(b"!", path)
            except BlockingIOError:
                pass  # the receiver has unread pokes already: it will wake
            except (ConnectionRefusedError, FileNotFoundError):
                with contextlib.suppress(OSError):
                    os.unlink(path)  # its process is gone
            except OSError:
                pass

    def close(self) -> None:
        self._sock.close()


class Listener:
    """Receives wake-ups on the event loop and calls `on_wake` (once per burst of pokes)."""

    def __init__(self, db_path: str, on_wake: Callable[[], None]) -> None:
        self.dir = notify_dir(db_path)
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        self.path = os.path.join(self.dir, f"{os.getpid()}-{uuid.uuid4().hex[:12]}.sock")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._sock.bind(self.path)
        self._on_wake = on_wake
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._sock.fileno(), self._readable)

    def _readable(self) -> None:
        while True:
            try:
                self._sock.recv(64)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
        self._on_wake()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
