"""The one schema layer for request input: the JSON Schemas in the route table (bodies)
and in ``openapi.QUERY`` (query parameters) are both what ``/api/v1/openapi.json``
publishes and what every request is checked against before its handler runs, so a
422 names the field and the document cannot promise what the server does not check.

Only the JSON Schema keywords the route table uses are understood (type, properties,
required, additionalProperties, enum, minimum, maximum, minLength, maxLength,
maxItems, items); an unknown keyword is a programming error, caught by the tests.
"""

from __future__ import annotations

import json
import re
from typing import Any

from l402tui.coordinator.errors import Invalid, NotFound, TooLarge

MAX_DEPTH = 16  # nesting of a JSON body; our bodies are flat objects
MAX_JSON_BYTES = 2 * 1024 * 1024  # a diff is capped at coordinator.max_diff_bytes (256 KiB) before this
MAX_INT = 2**62  # SQLite integers are 64-bit signed; ids, offsets and limits stay well inside
_DIGITS = re.compile(r"[0-9]{1,19}")
_KNOWN = {"type", "properties", "required", "additionalProperties", "enum", "minimum", "maximum", "minLength",
          "maxLength", "maxItems", "items", "description", "format", "default"}
_TYPE_WORDS = {"object": "an object", "array": "an array", "string": "a string", "integer": "an integer",
               "number": "a number", "boolean": "a boolean (true or false)", "null": "null"}


def parse_json(raw: bytes) -> Any:
    """Bytes -> JSON value, refusing what is too big or nested too deeply (as 4xx)."""
    if len(raw) > MAX_JSON_BYTES:
        raise TooLarge(f"the JSON body is {len(raw)} bytes; the limit is {MAX_JSON_BYTES}")
    try:
        value = json.loads(raw, object_pairs_hook=_no_repeated_keys)
    except RecursionError:
        raise Invalid(f"the JSON body is nested too deeply (at most {MAX_DEPTH} levels)",
                      code="invalid_json") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise Invalid("the request body must be JSON", code="invalid_json") from None
    if _depth(value) > MAX_DEPTH:
        raise Invalid(f"the JSON body is nested too deeply (at most {MAX_DEPTH} levels)", code="invalid_json")
    return value


class _RepeatedKey(ValueError):
    pass


def _no_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # {"self_funded": "x", "self_funded": true}: json.loads keeps the last, a proxy or
    # another parser may take the first; one meaning per body, so a repeat is refused.
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        repeated = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise Invalid(f"the JSON body gives {repeated[:40]!r} more than once", code="invalid_json",
                      details={"field": repeated[:40]})
    return value


# A \ud800 escape with no partner decodes to a lone surrogate: not text, so UTF-8 cannot
# encode it for SQLite, a log or a file, and the request would fail deep inside a handler.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _depth(value: Any) -> int:
    """Nesting depth of a parsed body; refuses (422) a string or key that is not valid Unicode."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, str):
            if _SURROGATE.search(node):
                raise Invalid("the JSON body holds a \\u escape of a lone UTF-16 surrogate (not a character); "
                              "send text as UTF-8", code="invalid_json")
        elif isinstance(node, (dict, list)):
            deepest = max(deepest, level)
            if level > MAX_DEPTH:
                return level
            if isinstance(node, dict):
                stack.extend((k, level) for k in node)
            stack.extend((v, level + 1) for v in (node.values() if isinstance(node, dict) else node))
    return deepest


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _matches(kind: str, wanted: str) -> bool:
    return kind == wanted or (wanted == "number" and kind == "integer")


def check(value: Any, schema: dict[str, Any], where: str = "") -> None:
    """Raise :class:`Invalid` (422) naming the first field of ``value`` that breaks ``schema``."""
    unknown = set(schema) - _KNOWN
    if unknown:
        raise ValueError(f"schema keyword(s) not understood: {sorted(unknown)}")
    field = where or "the body"
    name = f"'{where}'" if where else "the body"
    details = {"field": where} if where else {}
    wanted = schema.get("type")
    kind = _kind(value)
    if wanted is not None:
        options = wanted if isinstance(wanted, list) else [wanted]
        if not any(_matches(kind, w) for w in options):
            words = " or ".join(_TYPE_WORDS[w] for w in options)
            raise Invalid(f"{name} must be {words}, not {_TYPE_WORDS[kind]}", code="invalid_request",
                          details=details)
    if "enum" in schema and value not in schema["enum"]:
        raise Invalid(f"{name} must be one of {', '.join(map(str, schema['enum']))}", code="invalid_request",
                      details=details)
    if kind in ("integer", "number"):
        if "minimum" in schema and value < schema["minimum"]:
            raise Invalid(f"{name} must be at least {schema['minimum']}", code="invalid_request", details=details)
        if "maximum" in schema and value > schema["maximum"]:
            raise Invalid(f"{name} must be at most {schema['maximum']}", code="invalid_request", details=details)
        if kind == "number" and value != value or value in (float("inf"), float("-inf")):
            raise Invalid(f"{name} must be a finite number", code="invalid_request", details=details)
    if kind == "string":
        if len(value) < schema.get("minLength", 0):
            raise Invalid(f"{name} must not be empty" if schema["minLength"] == 1 else
                          f"{name} must be at least {schema['minLength']} characters", code="invalid_request",
                          details=details)
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise Invalid(f"{name} is longer than {schema['maxLength']} characters", code="invalid_request",
                          details=details)
    if kind == "array":
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise Invalid(f"{name} has more than {schema['maxItems']} items", code="invalid_request",
                          details=details)
        for i, item in enumerate(value):
            check(item, schema.get("items", {}), f"{field}[{i}]")
    if kind == "object":
        for key in schema.get("required", []):
            if key not in value:
                raise Invalid(f"'{_join(where, key)}' is required", code="invalid_request",
                              details={"field": _join(where, key)})
        properties = schema.get("properties", {})
        for key, item in value.items():
            if key in properties:
                check(item, properties[key], _join(where, key))
            elif schema.get("additionalProperties", True) is False:
                raise Invalid(f"'{_join(where, key)}' is not a field of this request "
                              f"(expected: {', '.join(properties)})", code="invalid_request",
                              details={"field": _join(where, key)})


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def query_value(raw: str, schema: dict[str, Any], name: str) -> Any:
    """A query parameter's text -> its typed value, checked against ``schema``."""
    wanted = schema.get("type", "string")
    if wanted == "integer":
        if not _DIGITS.fullmatch(raw):
            raise Invalid(f"'{name}' must be between {schema.get('minimum', 0)} and {schema.get('maximum', MAX_INT)} "
                          f"(a whole number; got {raw[:40]!r})", code="invalid_request", details={"field": name})
        value: Any = int(raw)
    elif wanted == "boolean":
        lowered = raw.lower()
        if lowered not in ("true", "false", "1", "0"):
            raise Invalid(f"'{name}' must be true or false (or 1 or 0), not {raw[:40]!r}", code="invalid_request",
                          details={"field": name})
        value = lowered in ("true", "1")
    else:
        value = raw
    check(value, schema, name)
    return value


def event_id(raw: str, source: str) -> int:
    """An event id from ``?after=`` or ``Last-Event-ID``: a whole number below 2**62."""
    return query_value(raw.strip(), {"type": "integer", "minimum": 0, "maximum": MAX_INT}, source)


MAX_PATH = 2048  # ids are short; a longer path is an attack or a mistake
MAX_ID = 256  # a path parameter (the OpenAPI document says the same)


def input_middleware(routes: dict[tuple[str, str], Any], queries: dict[tuple[str, str], list]) -> Any:
    """aiohttp middleware: path size, the route's query parameters and JSON body checked
    before its handler (which reads the checked body with ``http_common.json_body``).

    ``routes``: (METHOD, path template) -> Route; ``queries``: the same key -> [(name, schema, text)]."""
    from aiohttp import web

    @web.middleware
    async def checked_input(request: web.Request, handler: Any) -> web.StreamResponse:
        resource = getattr(request.match_info.route, "resource", None)
        key = (request.method, resource.canonical if resource is not None else "")
        route = routes.get(key)
        if route is not None and any(len(v) > MAX_ID for v in request.match_info.values()):
            raise NotFound(f"nothing here: ids are at most {MAX_ID} characters")
        declared = queries.get(key, [])
        for name, schema, _ in declared:
            if name in request.query:
                request[f"query:{name}"] = query_value(request.query[name], schema, name)
        if route is not None:
            unknown = [name for name in request.query if name not in {n for n, _, _ in declared}]
            if unknown:
                allowed = ", ".join(n for n, _, _ in declared) or "none"
                raise Invalid(f"unknown query parameter {unknown[0][:40]!r} (this route takes: {allowed})",
                              code="invalid_request", details={"field": unknown[0][:40]})
        if len(request.raw_path) > MAX_PATH:
            # Neither echoed nor logged whole: it may be kilobytes.
            return web.json_response({"error": "uri_too_long", "message": f"the path and query are longer than "
                                      f"{MAX_PATH} characters"}, status=414)
        if route is not None and route.body is not None and request.content_type not in route.upload_types:
            if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
                raise TooLarge(f"the JSON body is {request.content_length} bytes; the limit is {MAX_JSON_BYTES}")
            # No body at all is checked as {}: the 422 then names the first required field.
            body = parse_json(await read_capped(request)) if request.body_exists else {}
            if not isinstance(body, dict):
                raise Invalid("the request body must be a JSON object", code="invalid_json")
            check(body, route.body)
            request["json_body"] = body
        return await handler(request)

    return checked_input


# A body must arrive within BODY_TIMEOUT_S plus the time its size takes at MIN_BODY_RATE:
# a client that trickles a byte every few seconds (slowloris on the body, past the
# header timeout) cannot hold a connection and a handler for ever.
BODY_TIMEOUT_S = 30.0
MIN_BODY_RATE = 64 * 1024  # bytes per second


async def read_capped(request: Any, cap: int = MAX_JSON_BYTES) -> bytes:
    """The body, refused as soon as it passes ``cap`` (a chunked body has no length), or
    when it has not all arrived in time (408; the connection is then closed)."""
    import asyncio

    from l402tui.coordinator.errors import BadRequest

    declared = request.content_length
    deadline = BODY_TIMEOUT_S + min(declared if declared is not None else cap, cap) / MIN_BODY_RATE
    chunks, total = [], 0
    try:
        async with asyncio.timeout(deadline):
            async for chunk in request.content.iter_chunked(64 * 1024):
                total += len(chunk)
                if total > cap:
                    raise TooLarge(f"the body is over {cap} bytes")
                chunks.append(chunk)
    except TimeoutError:
        # Answered 408; aiohttp then reads what is left for at most its lingering time
        # (10 s) and closes the connection, since the body never ended.
        raise BadRequest(f"the request body did not arrive within {deadline:.0f} s ({total} bytes came)",
                         code="body_timeout", status=408) from None
    return b"".join(chunks)
