"""The endpoint's error responses: the original's JSON shape with a correct HTTP status and a clear message.

The body is `{"errors":[{"errorCode":int,"message":str}],"statusCode":int,"message":"Failed to run endpoint"}`:
the shape and the codes 50001-50005 are kept so that existing clients still parse it. The status says what
happened (404, 413, 415, 429, 503, ...) and the body is `application/json`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import IntEnum

SUMMARY = "Failed to run endpoint"


class Code(IntEnum):
    """Error codes in the body. 50001-50005 are the original's; the rest are algorun's."""

    BAD_BODY = 50001
    UNKNOWN_PATH = 50002
    UPLOAD_FAILED = 50003
    UPLOAD_UNAVAILABLE = 50004
    TOPICS_FAILED = 50005
    UNSUPPORTED_MEDIA_TYPE = 50006
    TOO_LARGE = 50007
    BROKER_UNAVAILABLE = 50008
    OVERLOADED = 50009
    UNAUTHENTICATED = 50010
    FORBIDDEN = 50011
    METHOD_NOT_ALLOWED = 50012
    BAD_TRACE_ID = 50013
    NOT_FOUND = 50014
    BAD_MULTIPART = 50015
    REJECTED_BY_BROKER = 50016
    LOG_FULL = 50017
    BAD_PARAMETERS = 50018
    INTERNAL = 50099


@dataclass
class EndpointError(Exception):
    """A request the endpoint refuses, with the status and body the client gets.

    `retry_after` (seconds) becomes a `Retry-After` header: set for 429 and 503, whose requests may succeed later.
    """

    status: int
    code: Code
    message: str
    retry_after: int | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def body(self) -> dict[str, object]:
        return error_body(self.status, [(self.code, self.message)])

    def response_headers(self) -> dict[str, str]:
        out = dict(self.headers)
        if self.retry_after is not None:
            out["Retry-After"] = str(max(1, self.retry_after))
        return out


def error_body(status: int, errors: list[tuple[int, str]]) -> dict[str, object]:
    """The error JSON (module docstring)."""
    return {
        "errors": [{"errorCode": int(code), "message": message} for code, message in errors],
        "statusCode": status,
        "message": SUMMARY,
    }


def error_json(status: int, code: int, message: str) -> bytes:
    return json.dumps(error_body(status, [(code, message)])).encode()


# Constructors for the common cases, so handlers read as what went wrong.


def unknown_path(owner: str, name: str, path: str, known: list[str]) -> EndpointError:
    listed = ", ".join(f'"{p}"' for p in known) or "none"
    return EndpointError(404, Code.UNKNOWN_PATH, f'no endpoint path "{owner}/{name}/{path}" (paths: {listed})')


def unsupported_media_type(path: str, got: str, accepted: str) -> EndpointError:
    return EndpointError(
        415,
        Code.UNSUPPORTED_MEDIA_TYPE,
        f'path "{path}" accepts content type "{accepted}", not "{got}"',
    )


def too_large(size: int | None, limit: int, hint: str = "") -> EndpointError:
    got = f"{size} bytes" if size is not None else "the body"
    return EndpointError(413, Code.TOO_LARGE, f"{got} exceeds the limit of {limit} bytes{hint}")


def overloaded(reason: str, retry_after: int = 1) -> EndpointError:
    return EndpointError(429, Code.OVERLOADED, f"the endpoint is overloaded ({reason}); retry later", retry_after)


def broker_unavailable(detail: str, retry_after: int = 5) -> EndpointError:
    return EndpointError(
        503,
        Code.BROKER_UNAVAILABLE,
        f"the message was not stored: the broker is unavailable ({detail}); retry later",
        retry_after,
    )
