"""Decide, without writing, whether a live object already is what the operator wants. Pure.

A server-side apply of an unchanged object is still a PATCH request, so the operator only applies when:
- the object is missing;
- its `algo.run/applied-hash` annotation differs from the desired object's digest (the spec changed, including
  a field being removed, which SSA then removes); or
- some desired field is missing from or different in the live object (someone edited a managed field: drift).

Fields only the live object has (server defaults, status, other managers' fields) are ignored. Quantities are
compared by value (`0.5` == `500m`), and an empty desired map or list matches an absent live field.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from algorun.api.units import parse_quantity
from algorun.operator.render.labels import HASH_ANNOTATION


def digest(obj: dict[str, Any]) -> str:
    """A digest of a desired object, excluding the hash annotation itself."""
    meta = dict(obj.get("metadata") or {})
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != HASH_ANNOTATION}
    meta["annotations"] = annotations
    canonical = json.dumps({**obj, "metadata": meta}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:20]


def with_digest(obj: dict[str, Any]) -> dict[str, Any]:
    meta = dict(obj["metadata"])
    meta["annotations"] = {**(meta.get("annotations") or {}), HASH_ANNOTATION: digest(obj)}
    return {**obj, "metadata": meta}


def needs_apply(desired: dict[str, Any], live: dict[str, Any] | None) -> bool:
    if live is None:
        return True
    live_hash = ((live.get("metadata") or {}).get("annotations") or {}).get(HASH_ANNOTATION)
    wanted_hash = ((desired.get("metadata") or {}).get("annotations") or {}).get(HASH_ANNOTATION)
    if wanted_hash is not None and live_hash != wanted_hash:
        return True
    return not is_subset(desired, live)


def is_subset(desired: Any, live: Any) -> bool:
    """Whether every field of `desired` is in `live` with an equal value (lists compare item by item)."""
    if isinstance(desired, dict):
        if not desired:
            return live is None or isinstance(live, dict)
        if not isinstance(live, dict):
            return False
        return all(is_subset(v, live.get(k)) for k, v in desired.items())
    if isinstance(desired, list):
        if not desired:
            return live is None or live == []
        if not isinstance(live, list) or len(live) != len(desired):
            return False
        return all(is_subset(d, lv) for d, lv in zip(desired, live, strict=True))
    return _equal_scalars(desired, live)


def _equal_scalars(desired: Any, live: Any) -> bool:
    if desired == live and type(desired) is type(live):
        return True
    if isinstance(desired, bool) or isinstance(live, bool):
        return False
    if isinstance(desired, int | float) and isinstance(live, int | float):
        return float(desired) == float(live)
    if isinstance(desired, str | int | float) and isinstance(live, str | int | float):
        try:
            return parse_quantity(desired) == parse_quantity(live)
        except (ValueError, TypeError):
            return False
    return False
