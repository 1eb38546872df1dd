"""Client authentication for the ingestion endpoint: bearer tokens and/or API keys (optional).

The original had none (it relied on the ingress). Tokens and keys come from environment variables or files
(mounted Secrets), never from the config map. A request without credentials gets 401; one whose credentials
match nothing gets 403. Comparisons take constant time per configured secret.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

from algorun.endpoint.errors import Code, EndpointError

API_KEY_HEADER = "X-API-Key"


@dataclass(frozen=True)
class Credentials:
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
