"""Signatures of webhook deliveries: HMAC-SHA256 of the exact body bytes with the hook's secret.

The header is `X-Algorun-Signature: sha256=<lower-case hex>`, the format GitHub and others use, so receivers can
reuse their verification code. The signature covers the body only, never headers a proxy may rewrite; receivers
that want replay protection drop repeated `X-Algorun-Delivery-Id`s. Verify with a constant-time comparison
(`verify` below; docs/hooks.md has a standalone recipe).
"""

from __future__ import annotations

import functools
import hashlib
import hmac

SIGNATURE_HEADER = "X-Algorun-Signature"
PREFIX = "sha256="


def sign(secret: bytes, body: bytes) -> str:
    """The signature header value for `body`: a copy of the HMAC already keyed with `secret` (keying costs as much
    as hashing a small body, and a hook signs every delivery with the same secret) fed the body."""
    mac = _keyed(secret).copy()
    mac.update(body)
    return PREFIX + mac.hexdigest()


@functools.lru_cache(maxsize=64)
def _keyed(secret: bytes) -> hmac.HMAC:
    """The HMAC-SHA256 keyed with `secret` and fed nothing: never updated itself, only copied."""
    return hmac.new(secret, digestmod=hashlib.sha256)


def verify(secret: bytes, body: bytes, header: str | None) -> bool:
    """True when `header` is the signature of `body` under `secret` (constant time, so a receiver that uses it
    leaks nothing about the expected value through its answer times)."""
    if not header:
        return False
    value = header.strip()
    if value[: len(PREFIX)].lower() != PREFIX:
        return False
    given = PREFIX + value[len(PREFIX) :].lower()
    return hmac.compare_digest(given.encode(), sign(secret, body).encode())
