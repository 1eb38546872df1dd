"""Client authentication for the ingestion endpoint: bearer tokens and/or API keys (optional).

Without configured credentials every request is let in (an ingress may authenticate instead). Tokens and keys
come from environment variables or files (mounted Secrets), never from the config map. A request without
credentials gets 401; one whose credentials match nothing gets 403. Comparisons take constant time per
configured secret.

On Kubernetes the credentials are a Secret mounted as a directory (`CredentialsDirectory`): the endpoint reads its
files again when the kubelet updates them, so rotating a token needs no restart, and it refuses to run open when
the directory holds no credential.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass, field
from pathlib import Path

from algorun.endpoint.errors import Code, EndpointError

API_KEY_HEADER = "X-API-Key"
BEARER_TOKENS_FILE = "bearer-tokens"
API_KEYS_FILE = "api-keys"


@dataclass(frozen=True)
class Credentials:
    """The tokens and keys a request may carry; none configured means every request is let in."""

    bearer_tokens: frozenset[str] = field(default_factory=frozenset)
    api_keys: frozenset[str] = field(default_factory=frozenset)

    @property
    def enabled(self) -> bool:
        return bool(self.bearer_tokens or self.api_keys)

    def check(self, authorization: str | None, api_key: str | None) -> None:
        """Raise 401/403 unless the request carries a configured bearer token or API key."""
        if not self.enabled:
            return
        token = None
        if authorization:
            scheme, _, value = authorization.strip().partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                token = value.strip()
        if token is None and not api_key:
            raise EndpointError(
                401,
                Code.UNAUTHENTICATED,
                f"authentication required: send 'Authorization: Bearer <token>' or '{API_KEY_HEADER}: <key>'",
                headers={"WWW-Authenticate": 'Bearer realm="algorun-endpoint"'},
            )
        if token is not None and _matches(token, self.bearer_tokens):
            return
        if api_key and _matches(api_key, self.api_keys):
            return
        raise EndpointError(403, Code.FORBIDDEN, "the token or API key is not valid for this endpoint")


def _matches(candidate: str, secrets: frozenset[str]) -> bool:
    found = False
    raw = candidate.encode()
    for secret in secrets:
        found |= hmac.compare_digest(raw, secret.encode())
    return found


def secret_lines(text: str) -> frozenset[str]:
    """One credential per line; blank lines and `#` comments are skipped."""
    return frozenset(v for v in (line.strip() for line in text.splitlines()) if v and not v.startswith("#"))


class CredentialsDirectory:
    """Credentials kept as files in a directory (a mounted Secret): `bearer-tokens` and `api-keys`, either may be
    absent. `base` (from the environment) is always accepted as well."""

    def __init__(self, path: str, base: Credentials) -> None:
        self.path = Path(path)
        self.base = base
        self._stamp = self._current_stamp()

    def _files(self) -> tuple[Path, Path]:
        return self.path / BEARER_TOKENS_FILE, self.path / API_KEYS_FILE

    def _current_stamp(self) -> tuple[tuple[int, int, int] | None, ...]:
        out: list[tuple[int, int, int] | None] = []
        for f in self._files():
            try:
                st = os.stat(f)
            except OSError:  # not there (a key the Secret lacks), or not readable: `read` says which
                out.append(None)
            else:
                out.append((st.st_ino, st.st_mtime_ns, st.st_size))
        return tuple(out)

    def read(self) -> Credentials:
        """`base` plus what the files hold now. OSError when a file exists but cannot be read."""
        tokens, keys = (secret_lines(f.read_text()) if f.exists() else frozenset() for f in self._files())
        return Credentials(self.base.bearer_tokens | tokens, self.base.api_keys | keys)

    def changed(self) -> bool:
        """Whether the files changed since the last call (or since this object was made)."""
        stamp = self._current_stamp()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        return True
