"""Byte-exact header encoding for the local log: a count, then (name length, value length, name, value)."""

from __future__ import annotations

import struct

from algorun.bus.types import Headers

_COUNT = struct.Struct("<H")
_ITEM = struct.Struct("<HI")


def encode_headers(headers: Headers | None) -> bytes | None:
    if not headers:
        return None
    parts = [_COUNT.pack(len(headers))]
    pack = _ITEM.pack
    for name, value in headers:
        raw = name.encode()
        parts.append(pack(len(raw), len(value)))
        parts.append(raw)
        parts.append(value)
    return b"".join(parts)


def decode_headers(blob: bytes | None) -> Headers:
    if not blob:
        return []
    (count,) = _COUNT.unpack_from(blob, 0)
    pos = _COUNT.size
    out: Headers = []
    unpack = _ITEM.unpack_from
    size = _ITEM.size
    for _ in range(count):
        nlen, vlen = unpack(blob, pos)
        pos += size
        name = blob[pos : pos + nlen].decode()
        pos += nlen
        out.append((name, blob[pos : pos + vlen]))
        pos += vlen
    return out
