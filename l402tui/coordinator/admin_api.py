"""Admin routes (behind the admin macaroon): bounty management, ledger views, events."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from l402tui.coordinator.errors import Invalid
from l402tui.coordinator.http_common import GATE, SSE_TASKS, json_body, svc

HEARTBEAT_S = 15.0  # below common proxy idle timeouts


async def admin_list_bounties(request: web.Request) -> web.Response:
    return web.json_response({"bounties": await svc(request).list_bounties(include_all=True)})


async def admin_create_bounty(request: web.Request) -> web.Response:
    service = svc(request)
    if request.content_type in ("application/gzip", "application/x-gzip", "application/octet-stream"):
        data = await request.read()
        self_funded = request.query.get("self_funded", "").lower() in ("1", "true", "yes")
        result = await service.create_bounty(data, self_funded=self_funded)
    else:
        body = await json_body(request)
        path = body.get("path")
        if not isinstance(path, str) or not path:
            raise Invalid("give {'path': '<bounty folder on the coordinator host>'} or upload a .tar.gz "
                          "with Content-Type: application/gzip", code="invalid_request")
        result = await service.create_bounty(path, self_funded=bool(body.get("self_funded", False)))
    return web.json_response(result, status=201)


async def admin_cancel(request: web.Request) -> web.Response:
    return web.json_response(await svc(request).cancel_bounty(request.match_info["id"]))


async def admin_close(request: web.Request) -> web.Response:
    return web.json_response(await svc(request).close_bounty(request.match_info["id"]))


async def admin_funding(request: web.Request) -> web.Response:
    bounty_id = request.match_info["id"]
    await svc(request).get_bounty(bounty_id)
    return web.json_response({"bounty_id": bounty_id, "funding": await svc(request).funding(bounty_id)})


def _limit(request: web.Request) -> int:
    try:
        return max(1, min(100_000, int(request.query.get("limit", "500"))))
    except ValueError:
        raise Invalid("'limit' must be an integer", code="invalid_request") from None


async def admin_submissions(request: web.Request) -> web.Response:
    subs = await svc(request).list_submissions(request.query.get("bounty_id"), _limit(request))
    return web.json_response({"submissions": subs})


async def admin_ledger(request: web.Request) -> web.Response:
    service, bounty_id, limit = svc(request), request.query.get("bounty_id"), _limit(request)
    return web.json_response({"entries": await service.ledger(bounty_id, limit),
                              "invoices": await service.invoices(bounty_id, limit),
                              "payments": await service.payments(bounty_id, limit)})


async def admin_revoke(request: web.Request) -> web.Response:
    n = await request.app[GATE].authority.revoke(request.match_info["token_id"])
    return web.json_response({"token_id": request.match_info["token_id"], "revoked_keys": n})


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: every state change, from ``?after=`` or ``Last-Event-ID`` on."""
    raw = request.headers.get("Last-Event-ID") or request.query.get("after") or "0"
    try:
        after = int(raw)
    except ValueError:
        raise Invalid("'after' / Last-Event-ID must be an event id (integer)", code="invalid_request") from None
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    task = asyncio.current_task()
    request.app[SSE_TASKS].add(task)
    try:
        await response.write(b": l402tui events\n\n")
        async for event in svc(request).follow_events(after, heartbeat_s=HEARTBEAT_S):
            if event is None:
                await response.write(b": keepalive\n\n")
                continue
            data = json.dumps(event, separators=(",", ":"))
            await response.write(f"id: {event['id']}\nevent: {event['kind']}\ndata: {data}\n\n".encode())
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        request.app[SSE_TASKS].discard(task)
    return response


