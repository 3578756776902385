"""What the coordinator's HTTP handlers share: app keys and request helpers."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from l402tui.coordinator.admin import AdminAuth
from l402tui.coordinator.errors import Invalid
from l402tui.coordinator.service import Coordinator
from l402tui.l402.middleware import L402Gate

COORDINATOR = web.AppKey("coordinator", Coordinator)
GATE = web.AppKey("gate", L402Gate)
ADMIN = web.AppKey("admin", AdminAuth)
SSE_TASKS = web.AppKey("sse_tasks", set)


def svc(request: web.Request) -> Coordinator:
    return request.app[COORDINATOR]


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object: the one the schema layer checked (coordinator/schema.py)
    against the route's body schema, or, for a route without one, parsed with the same caps."""
    if "json_body" in request:
        return request["json_body"]
    from l402tui.coordinator.schema import read_capped, parse_json

    body = parse_json(await read_capped(request)) if request.body_exists else None
    if not isinstance(body, dict):
        raise Invalid("the request body must be a JSON object", code="invalid_json")
    return body
