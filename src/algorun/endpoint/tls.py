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

import logging
import os
import ssl
import tempfile
import threading
from pathlib import Path

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


class ServingCertificate:
    """The certificate files of both listeners and what was last loaded from them."""

    def __init__(self, tls: TlsFiles) -> None:
        self.tls = tls
        self._paths = tuple(p for p in (tls.cert, tls.key, tls.client_ca) if p)
        self._lock = threading.Lock()  # gRPC's fetcher runs on gRPC's threads
        self._http_stamp = _stamp(self._paths)
        self._grpc_stamp = self._http_stamp
        self.ssl_context = self._new_context()
        self.reloads = 0
        self.rejected = 0  # changed files the HTTPS listener could not load

    # ---- HTTPS ----

    def _new_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.tls.cert, self.tls.key)
        if self.tls.client_ca:
            ctx.load_verify_locations(self.tls.client_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    def reload_http(self) -> bool:
        """Load changed files into the live context (on the event loop's thread: no handshake runs meanwhile).
        True when it did.

        The pair is first copied to a private file and loaded into a scratch context from there; the live context
        then loads the same copy, so a second change of the mounted files in between cannot leave it half
        loaded (a new certificate with no key would fail every handshake)."""
        try:
            stamp = _stamp(self._paths)
            if stamp == self._http_stamp:
                return False
            self._http_stamp = stamp
            chain = Path(self.tls.key).read_bytes() + b"\n" + Path(self.tls.cert).read_bytes()
            client_ca = Path(self.tls.client_ca).read_bytes() if self.tls.client_ca else None
            with tempfile.TemporaryDirectory(prefix="algorun-tls-") as private:
                pair = Path(private) / "pair.pem"
                pair.touch(mode=0o600)
                pair.write_bytes(chain)
                ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(pair)  # fails here, or nowhere
                self.ssl_context.load_cert_chain(pair)
            if client_ca is not None:
                self.ssl_context.load_verify_locations(cadata=client_ca.decode("ascii", "replace"))
        except (OSError, ssl.SSLError, ValueError) as e:
            log.warning("certificate files changed but do not load, keeping the current certificate: %s", e)
            self.rejected += 1
            return False
        self.reloads += 1
        log.info("HTTPS: loaded the changed certificate files %s", self.tls.cert)
        return True

    # ---- gRPC ----

    def _grpc_config(self) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration(
            [(Path(self.tls.key).read_bytes(), Path(self.tls.cert).read_bytes())],
            root_certificates=Path(self.tls.client_ca).read_bytes() if self.tls.client_ca else None,
        )

    def _grpc_fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """gRPC's question before a handshake: None keeps the current configuration."""
        with self._lock:
            try:
                stamp = _stamp(self._paths)
                if stamp == self._grpc_stamp:
                    return None
                self._grpc_stamp = stamp
                ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(self.tls.cert, self.tls.key)
                config = self._grpc_config()
            except (OSError, ssl.SSLError) as e:
                log.warning("certificate files changed but do not load, keeping the current certificate: %s", e)
                return None
            log.info("gRPC: loaded the changed certificate files %s", self.tls.cert)
            return config

    def grpc_credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self._grpc_config(), self._grpc_fetch, require_client_authentication=bool(self.tls.client_ca)
        )
