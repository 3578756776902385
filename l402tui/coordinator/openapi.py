"""``/api/v1/openapi.json``, generated from the app's route table so it matches the routes.

The body and query schemas here are the ones the schema layer (schema.py) checks every
request against, so what the document promises is what the server enforces.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from l402tui.coordinator.http_common import Route

_ERROR = {"type": "object", "required": ["error", "message"],
          "properties": {"error": {"type": "string"}, "message": {"type": "string"},
                         "reason": {"type": "string"}, "field": {"type": "string"}}}

# One server-sent event: id (the event id to resume from), event (its kind), data (the event as JSON).
_SSE_EVENT = {"type": "object", "properties": {"id": {"type": "string"}, "event": {"type": "string"},
                                               "data": {"type": "string"}, "retry": {"type": "integer"}}}
_INT = {"type": "integer", "minimum": 0, "maximum": 2**62}
_STR = {"type": "string", "maxLength": 256}
_LIMIT = ("limit", _INT, "at most this many rows")
_BOUNTY = ("bounty_id", _STR, "only this bounty")
# Query parameters per route (the route table names paths only).
QUERY: dict[tuple[str, str], list[tuple[str, dict[str, Any], str]]] = {
    ("GET", "/api/v1/admin/submissions"): [_BOUNTY, _LIMIT],
    ("GET", "/api/v1/admin/ledger"): [_BOUNTY, _LIMIT],
    ("GET", "/api/v1/events"): [("after", _INT, "replay events after this id (or send Last-Event-ID)")],
    ("GET", "/api/v1/admin/events"): [("after", _INT, "events after this id"), ("limit", _INT, "at most 1000")],
    ("GET", "/api/v1/admin/evaluations"): [_BOUNTY, ("submission_id", _STR, "only this submission"), _LIMIT],
    ("GET", "/api/v1/admin/evaluations/{id}/log"): [
        ("offset", _INT, "byte offset into the evaluation's logs (next_offset of the previous page)"),
        ("max_bytes", _INT, "page size in bytes (capped at 1 MiB)")],
    ("GET", "/api/v1/admin/holdbacks"): [_BOUNTY],
    ("POST", "/api/v1/admin/bounties"): [("self_funded", {"type": "boolean"},
                                          "with an uploaded .tar.gz: the operator funds the pool")],
}
_HEADERS = {
    # Status -> headers that answer carries.
    401: {"WWW-Authenticate": "L402 error=\"<reason>\" (L402 routes) or Bearer realm=\"l402tui-admin\" (admin)"},
    402: {"WWW-Authenticate": "L402 version=\"0\", token=\"<base64 macaroon>\", macaroon=\"<same>\", "
                              "invoice=\"<BOLT11>\": pay the invoice, retry with "
                              "Authorization: L402 <macaroon>:<hex preimage>"},
    429: {"Retry-After": "seconds to wait"},
}
# Answers any route can give, besides its own.
_COMMON = {400: "malformed request", 413: "body too large", 414: "path too long", 422: "invalid input (the "
           "message names the field)", 429: "rate limited"}

_SECURITY = {"l402": [{"L402": []}], "token": [{"L402": []}], "admin": [{"AdminMacaroon": []}],
             "sponsor": [{"SponsorCredential": []}, {"L402": []}]}


def _headers(code: int, route: "Route") -> dict[str, Any]:
    out = {}
    for name, text in _HEADERS.get(code, {}).items():
        out[name] = {"description": text, "schema": {"type": "string"}, "required": code != 401}
    if code == 200 and route.path.endswith("/package"):
        out["X-Package-SHA256"] = {"description": "sha256 (hex) of the tarball, as published in the bounty",
                                   "required": True, "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}
    return out


def _response(code: int, description: str, route: "Route") -> dict[str, Any]:
    out = _response_body(code, description)
    headers = _headers(code, route)
    if headers:
        out["headers"] = headers
    return out


def _response_body(code: int, description: str) -> dict[str, Any]:
    if code >= 400:
        return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    if "tarball" in description:
        return {"description": description, "content": {"application/gzip": {"schema": {"type": "string",
                                                                                         "format": "binary"}}}}
    if "event-stream" in description:
        return {"description": description, "content": {"text/event-stream": {"schema": _SSE_EVENT}}}
    return {"description": description, "content": {"application/json": {"schema": {"type": "object"}}}}


def document(routes: list["Route"]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        params = [{"name": name, "in": "path", "required": True, "schema": {"type": "string", "maxLength": 256}}
                  for name in re.findall(r"{(\w+)}", route.path)]
        params += [{"name": name, "in": "query", "required": False, "schema": schema, "description": text}
                   for name, schema, text in QUERY.get((route.method, route.path), [])]
        op: dict[str, Any] = {
            "summary": route.summary,
            "operationId": f"{route.method.lower()}_{re.sub(r'[^a-z0-9]+', '_', route.path.lower()).strip('_')}",
            "parameters": params,
            "responses": {str(code): _response(code, desc, route) for code, desc in sorted(
                {**_COMMON, **({404: "not found"} if "{" in route.path else {}), **route.responses}.items())},
        }
        if route.access in _SECURITY:
            op["security"] = _SECURITY[route.access]
        if route.body is not None:
            content: dict[str, Any] = {"application/json": {"schema": route.body}}
            for kind in route.upload_types[:1]:
                content[kind] = {"schema": {"type": "string", "format": "binary",
                                            "description": "the bounty folder as a .tar.gz"}}
            op["requestBody"] = {"required": True, "content": content}
        if route.alias_of:
            op["description"] = f"Alias of {route.alias_of} for l402-train clients."
        paths.setdefault(route.path, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "l402tui coordinator", "version": "1",
                 "description": "Autoresearch bounties paid over Lightning. Gated routes answer 402 with "
                                "WWW-Authenticate: L402 macaroon=..., invoice=..., version=\"0\", token=...; "
                                "retry with Authorization: L402 <macaroon>:<preimage>."},
        "paths": paths,
        "components": {
            "schemas": {"Error": _ERROR},
            "securitySchemes": {
                "L402": {"type": "http", "scheme": "L402",
                         "description": "Authorization: L402 <base64 macaroon>:<hex preimage> (LSAT accepted)"},
                "AdminMacaroon": {"type": "http", "scheme": "bearer",
                                  "description": "Authorization: Bearer <contents of <data_dir>/admin.macaroon>"},
                "SponsorCredential": {"type": "http", "scheme": "bearer",
                                      "description": "Authorization: Bearer <sponsor macaroon> (from `l402tui "
                                                     "sponsor invite`), or the L402 token that paid the posting "
                                                     "fee as 'L402 <macaroon>:<preimage>'; scoped to the "
                                                     "sponsor's own bounties"},
            },
        },
    }
