"""The OpenAPI 3 document of one endpoint (served at `/openapi.json`), generated from its config.

Owner, name and path are enumerated with the configured values, so clients (and the schemathesis fuzzing test)
see exactly which URLs exist; every error status the endpoint can answer is documented with the error body.
"""

from __future__ import annotations

from typing import Any

from algorun.api.configs import EndpointConfig, EndpointPathConfig
from algorun.endpoint.ingest import TRACE_ID_PATTERN

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["errors", "statusCode", "message"],
    "properties": {
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["errorCode", "message"],
                "properties": {"errorCode": {"type": "integer"}, "message": {"type": "string"}},
            },
        },
        "statusCode": {"type": "integer"},
        "message": {"type": "string"},
    },
}

ACCEPTED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["traceID", "topic", "partition", "offset", "storedIn"],
    "properties": {
        "traceID": {"type": "string"},
        "topic": {"type": "string"},
        "partition": {"type": ["integer", "null"]},
        "offset": {"type": ["integer", "null"]},
        "storedIn": {"type": "string", "enum": ["broker", "log"]},
        "messages": {"type": "array", "items": {"type": "object"}},
    },
}

_ERRORS = {
    "400": "Malformed request (bad traceID, malformed multipart body)",
    "401": "Authentication required",
    "403": "Credentials not valid",
    "404": "Unknown deployment or path",
    "413": "Body larger than the limit",
    "415": "Content type not accepted by the path",
    "429": "Overloaded: retry after Retry-After seconds",
    "503": "Not stored (broker unavailable and no write-ahead log, log full, storage unavailable): retry later",
}


def _error(description: str, retry: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if retry:
        out["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}
    return out


def _media_types(path: EndpointPathConfig) -> list[str]:
    declared = [p.strip().split(";")[0].lower() for p in (path.content_type or "").split(",") if p.strip()]
    out = []
    for d in declared or ["*/*"]:
        kind, _, sub = d.partition("/")
        if kind in ("*", "any"):
            out.append("application/octet-stream")
        elif sub in ("*", "any", ""):
            out.append(f"{kind}/plain" if kind == "text" else f"{kind}/octet-stream")
        else:
            out.append(d)
    return list(dict.fromkeys(out))


def _body(paths: list[EndpointPathConfig], max_body_bytes: int) -> dict[str, Any]:
    types = list(dict.fromkeys(t for p in paths for t in _media_types(p)))
    content: dict[str, Any] = {
        t: {"schema": {"type": "string", "format": "binary", "maxLength": max_body_bytes}} for t in types
    }
    content["multipart/form-data"] = {
        "schema": {
            "type": "object",
            "properties": {"file": {"type": "string", "format": "binary"}},
            "additionalProperties": {"type": "string"},
        }
    }
    return {"required": False, "content": content}


def _ingest_op(summary: str, params: list[dict[str, Any]], body: dict[str, Any], secured: bool) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "202": {
            "description": "Stored: acknowledged by the broker (or held by the write-ahead log)",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}},
        }
    }
    for code, text in _ERRORS.items():
        if code in ("401", "403") and not secured:
            continue
        responses[code] = _error(text, retry=code in ("429", "503"))
    return {"summary": summary, "parameters": params, "requestBody": body, "responses": responses}


def openapi_document(config: EndpointConfig, *, max_body_bytes: int, secured: bool = False) -> dict[str, Any]:
    ident = config.identity
    names = sorted(p.name for p in config.paths)

    def param(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
        return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}

    base = [
        param("deploymentOwner", {"type": "string", "enum": [ident.deployment_owner]}, "deployment owner"),
        param("deploymentName", {"type": "string", "enum": [ident.deployment_name]}, "deployment name"),
        param("path", {"type": "string", "enum": names or ["-"]}, "endpoint path name"),
    ]
    query = {
        "name": "params",
        "in": "query",
        "required": False,
        "style": "form",
        "explode": True,
        "schema": {"type": "object", "additionalProperties": {"type": "string"}},
        "description": "any query parameters; they reach the algos as the endpointParams header",
    }
    trace = param("traceID", {"type": "string", "pattern": TRACE_ID_PATTERN.pattern}, "caller's traceID")
    body = _body(list(config.paths), max_body_bytes)
    prefix = "/{deploymentOwner}/{deploymentName}/{path}"
    ops: dict[str, Any] = {
        prefix: {
            "post": _ingest_op("Publish one message with a new traceID and run it", [*base, query], body, secured)
        },
        prefix + "/{traceID}": {
            "post": _ingest_op(
                "Publish with the caller's traceID and run (an empty body triggers the staged parts)",
                [*base, trace, query],
                body,
                secured,
            )
        },
        prefix + "/{traceID}/upload": {
            "post": _ingest_op("Stage a part for a later run (run=false)", [*base, trace, query], body, secured)
        },
        "/topics": {
            "get": {
                "summary": "Topic names, one per line",
                "responses": {
                    "200": {"description": "topics", "content": {"text/plain": {"schema": {"type": "string"}}}},
                    "503": _error("The broker did not answer", retry=True),
                    **({"401": _error(_ERRORS["401"]), "403": _error(_ERRORS["403"])} if secured else {}),
                },
            }
        },
        "/health": {"get": {"summary": "Liveness", "responses": {"200": {"description": "alive"}}}},
        "/ready": {
            "get": {
                "summary": "Readiness, with the reasons when not ready",
                "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}},
            }
        },
    }
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": f"algorun endpoint {ident.deployment_owner}/{ident.deployment_name}",
            "version": "1",
            "description": "Ingestion into the pipeline's topics. 202 means the message is stored.",
        },
        "paths": ops,
        "components": {"schemas": {"Error": ERROR_SCHEMA, "Accepted": ACCEPTED_SCHEMA}},
    }
    if secured:
        doc["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        }
        doc["security"] = [{"bearer": []}, {"apiKey": []}]
    return doc
