"""The endpoint's serving certificate for HTTPS and gRPC over TLS, reloaded when its files change.

On Kubernetes the certificate comes from a Secret that cert-manager renews before it expires, and the kubelet
swaps the mounted files in place. An endpoint that read them only at start would serve the old certificate until
it expired and then fail every handshake, so both listeners pick up new files without a restart:

- gRPC asks for the certificate configuration before every handshake (`dynamic_ssl_server_credentials`); the
  answer is "unchanged" unless the files' identity changed since the last load;
- HTTPS loads the new pair into the live `SSLContext` (new handshakes use it, open connections keep theirs),
  checked every `RELOAD_CHECK_S` by the service. A changed client CA bundle is added to the trusted ones there
  (OpenSSL cannot drop a CA from a live context): a CA removed from the bundle stays trusted until a restart.

A pair that does not load (a key that does not match its certificate) is logged once and the previous one kept
until the files change again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import ssl
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import grpc

from algorun.endpoint.settings import TlsFiles

log = logging.getLogger("algorun.endpoint")

RELOAD_CHECK_S = 5.0
"""How often the HTTPS listener looks at the certificate files (gRPC looks at every new connection)."""

_Stamp = tuple[tuple[int, int, int], ...]


def _stamp(paths: tuple[str, ...]) -> _Stamp:
    """What identifies the files' current contents: a replaced file (or a swapped symlink) changes it."""
    out = []
    for p in paths:
        st = os.stat(p)
        out.append((st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(out)


class _Pair(NamedTuple):
    """What the files held at one moment: read once, then checked and loaded from these bytes only, so a second
    change of the mounted files in between cannot mix an old key with a new certificate."""

    key: bytes
    cert: bytes
    client_ca: bytes | None

    @classmethod
    def read(cls, tls: TlsFiles) -> _Pair:
        ca = Path(tls.client_ca).read_bytes() if tls.client_ca else None
        return cls(Path(tls.key).read_bytes(), Path(tls.cert).read_bytes(), ca)


@contextlib.contextmanager
def _checked_pem(pair: _Pair) -> Iterator[Path]:
    """The pair as one private PEM file (OpenSSL loads keys from files), once a scratch context accepted it:
    a key that does not match its certificate raises `ssl.SSLError` here, before anything live changes."""
    with tempfile.TemporaryDirectory(prefix="algorun-tls-") as private:
        pem = Path(private) / "pair.pem"
        pem.touch(mode=0o600)
        pem.write_bytes(pair.key + b"\n" + pair.cert)
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(pem)
        yield pem


class ServingCertificate:
    """The certificate files of both listeners and what each last loaded from them."""

    def __init__(self, tls: TlsFiles) -> None:
        self.tls = tls
        self._paths = tuple(p for p in (tls.cert, tls.key, tls.client_ca) if p)
        self._lock = threading.Lock()  # gRPC's fetcher runs on gRPC's threads
        self._http_stamp = _stamp(self._paths)
        self._grpc_stamp = self._http_stamp
        self.ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ssl_context.load_cert_chain(tls.cert, tls.key)
        if tls.client_ca:
            self.ssl_context.load_verify_locations(tls.client_ca)
            self.ssl_context.verify_mode = ssl.CERT_REQUIRED
        self.reloads = 0
        self.rejected = 0  # changed files the HTTPS listener could not load

    def _changed_pair(self, last: _Stamp) -> tuple[_Stamp, _Pair | None]:
        """The files' stamp now, and what they hold if it differs from `last` (None when unchanged). Raises
        OSError when they cannot be read."""
        stamp = _stamp(self._paths)
        return stamp, (None if stamp == last else _Pair.read(self.tls))

    # ---- HTTPS ----

    def reload_http(self) -> bool:
        """Load changed files into the live context (on the event loop's thread: no handshake runs meanwhile).
        True when it did. The live context loads the checked copy, so it is never left half loaded (a new
        certificate with no key would fail every handshake)."""
        try:
            self._http_stamp, pair = self._changed_pair(self._http_stamp)
            if pair is None:
                return False
            with _checked_pem(pair) as pem:
                self.ssl_context.load_cert_chain(pem)
            if pair.client_ca is not None:
                self.ssl_context.load_verify_locations(cadata=pair.client_ca.decode("ascii", "replace"))
        except (OSError, ssl.SSLError, ValueError) as e:
            _keep_current(e)
            self.rejected += 1
            return False
        self.reloads += 1
        log.info("HTTPS: loaded the changed certificate files %s", self.tls.cert)
        return True

    # ---- gRPC ----

    @staticmethod
    def _grpc_config(pair: _Pair) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration([(pair.key, pair.cert)], root_certificates=pair.client_ca)

    def _grpc_fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """gRPC's question before a handshake: None keeps the current configuration."""
        with self._lock:
            try:
                self._grpc_stamp, pair = self._changed_pair(self._grpc_stamp)
                if pair is None:
                    return None
                with _checked_pem(pair):
                    pass
            except (OSError, ssl.SSLError, ValueError) as e:
                _keep_current(e)
                return None
            log.info("gRPC: loaded the changed certificate files %s", self.tls.cert)
            return self._grpc_config(pair)

    def grpc_credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self._grpc_config(_Pair.read(self.tls)),
            self._grpc_fetch,
            require_client_authentication=bool(self.tls.client_ca),
        )


def _keep_current(error: Exception) -> None:
    log.warning("certificate files changed but do not load, keeping the current certificate: %s", error)
