"""Pure request logic shared by HTTP and gRPC: which path, which topic, which headers and key.

Everything here is a function of the request and the config, so it is tested without a server. A plain POST
runs; the Kafka key is the traceID, so a trace's parts share a partition; an unknown path is an error answer;
`messageDataType` is always set; and the content type is checked (docs/compat.md, Endpoint, says where this differs
from the Go system).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import NamedTuple
from urllib.parse import urlencode

from algorun.api.configs import EndpointConfig, EndpointPathConfig
from algorun.bus import contract
from algorun.bus.types import Headers
from algorun.endpoint import errors
from algorun.endpoint.errors import Code, EndpointError

TRACE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_WILDCARDS = frozenset({"*", "any"})


class Route(NamedTuple):
    """The endpoint path of a request and how to treat it (a NamedTuple: built per request, and a frozen
    dataclass's `__init__` costs several times as much)."""

    path: EndpointPathConfig
    trace_id: str
    run: bool
    caller_trace_id: bool


class Router:
    """Finds the configured path for `/{owner}/{name}/{path}` (owner and name compared exactly, as before)."""

    def __init__(self, config: EndpointConfig) -> None:
        self.owner = config.identity.deployment_owner
        self.name = config.identity.deployment_name
        self.paths = {p.name: p for p in config.paths}

    def path(self, owner: str, name: str, path: str) -> EndpointPathConfig:
        found = self.paths.get(path) if (owner, name) == (self.owner, self.name) else None
        if found is None:
            raise errors.unknown_path(owner, name, path, sorted(self.paths))
        return found

    def route(self, owner: str, name: str, path: str, trace_id: str | None, *, upload: bool) -> Route:
        """The route of `POST /{o}/{n}/{path}[/{traceID}[/upload]]`.

        - no traceID: a new one, run now;
        - a traceID: run now with it (an empty body triggers the parts staged under it);
        - `/upload`: stage a part (`run=false`) for a later trigger.
        """
        found = self.path(owner, name, path)
        if trace_id is None:
            return Route(found, contract.new_trace_id(), run=True, caller_trace_id=False)
        return Route(found, check_trace_id(trace_id), run=not upload, caller_trace_id=True)


IngestPath = tuple[str, str, str, str | None, bool]
"""`(owner, name, path, traceID or None, upload)` of an ingestion URL."""


def split_ingest_path(path: str) -> IngestPath | None:
    """The parts of `/{owner}/{name}/{path}[/{traceID}[/upload]]`, or None for any other URL path.

    `path` is the request's `path_safe` (percent-decoded except `%2F` and `%25`); each segment must be non-empty
    and is then decoded like aiohttp's route variables, so a `%2F` inside a traceID stays part of it (and fails
    its check) instead of splitting it. One `split` replaces matching six route patterns per request.
    """
    parts = path.split("/")
    n = len(parts)
    if n < 4 or n > 6 or parts[0] or not all(parts[1:]):
        return None
    if "%" in path:
        parts = [_unquote_segment(p) for p in parts]
    if n == 4:
        return parts[1], parts[2], parts[3], None, False
    if n == 5:
        # As the route patterns did: `/upload` at the end stages the part, also when it is the traceID's place.
        return parts[1], parts[2], parts[3], parts[4], parts[4].endswith("/upload") or parts[4] == "upload"
    if parts[5] != "upload":
        return None
    return parts[1], parts[2], parts[3], parts[4], True


def _unquote_segment(segment: str) -> str:
    return segment.replace("%2F", "/").replace("%25", "%")


def check_trace_id(trace_id: str) -> str:
    if not TRACE_ID_PATTERN.fullmatch(trace_id):  # `match` let a trailing newline through (`$` allows one)
        raise EndpointError(
            400,
            Code.BAD_TRACE_ID,
            "a traceID is 1 to 128 characters: letters, digits, '.', '_', ':' or '-', starting with a letter or digit",
        )
    return trace_id


# ---- content types ----


@functools.lru_cache(maxsize=256)
def _declared(content_type: str | None) -> tuple[str, ...]:
    """A path's accepted media types, parsed once per distinct `contentType` (not on every request)."""
    return tuple(media_type(part) for part in (content_type or "").split(",") if part.strip())


def media_type(content_type: str | None) -> str:
    """`type/subtype` in lower case, without parameters; empty when absent."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def _accepts(declared: str, got: str) -> bool:
    d_type, _, d_sub = declared.partition("/")
    g_type, _, g_sub = got.partition("/")
    if d_type in _WILDCARDS and (not d_sub or d_sub in _WILDCARDS):
        return True
    if d_type != g_type:
        return False
    return d_sub in _WILDCARDS or d_sub == g_sub


def check_content_type(path: EndpointPathConfig, content_type: str | None) -> str | None:
    """The content type to record for a request on `path`; raises 415 when the path does not accept it.

    A path's `contentType` may list several types separated by commas and use wildcards (`text/*`, `*/*`; `text/any`,
    as existing manifests write it, counts as `text/*`). A request without a content type gets the path's (when it
    names exactly one concrete type). A path without a content type accepts anything.
    """
    declared = _declared(path.content_type)
    got = media_type(content_type)
    if not declared:
        return content_type or None
    if not got:
        concrete = [d for d in declared if "*" not in d and "any" not in d.split("/")]
        if len(concrete) == 1:
            return concrete[0]
        raise errors.unsupported_media_type(path.name, "(none)", path.content_type or "")
    if any(_accepts(d, got) for d in declared):
        return content_type
    raise errors.unsupported_media_type(path.name, got, path.content_type or "")


# ---- endpointParams ----


def encode_params(params: Iterable[tuple[str, str]] | Mapping[str, str]) -> str | None:
    """The `endpointParams` header: URL-encoded, keys sorted, each key's values in request order (the encoding
    of Go's `url.Values.Encode`, which existing algos parse). None when there are no parameters."""
    pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
    if not pairs:
        return None
    pairs.sort(key=lambda kv: kv[0])  # stable: repeated keys keep their order
    return urlencode(pairs)


# ---- the message ----


class Outgoing(NamedTuple):
    """One message to publish (a NamedTuple, for the same reason as `Route`)."""

    topic: str
    key: bytes
    value: bytes
    headers: Headers
    trace_id: str


def build_message(
    route: Route,
    value: bytes,
    *,
    run: bool | None = None,
    content_type: str | None,
    endpoint_params: str | None,
    file_name: str | None = None,
    data_type: contract.MessageDataType = contract.MessageDataType.EMBEDDED,
    traceparent: str | None = None,
) -> Outgoing:
    """The Kafka message for a request: key = traceID; headers per the contract (`messageDataType` always set:
    `FileReference` only when `value` is a reference to a payload in storage, whatever the path declares)."""
    headers = contract.first_hop(
        trace_id=route.trace_id,
        run=route.run if run is None else run,
        content_type=content_type,
        endpoint_params=endpoint_params,
        file_name=file_name,
        data_type=data_type,
        traceparent=traceparent,
    )
    return Outgoing(
        topic=route.path.topic,
        key=contract.message_key(route.trace_id),
        value=value,
        headers=headers,
        trace_id=route.trace_id,
    )
