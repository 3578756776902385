"""What the coordinator's HTTP handlers share: app keys and request helpers."""

from __future__ import annotations

import json
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
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise Invalid("the request body must be JSON", code="invalid_json") from None
    if not isinstance(body, dict):
        raise Invalid("the request body must be a JSON object", code="invalid_json")
    return body
