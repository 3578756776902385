"""Admin routes (behind the admin macaroon): bounty management, ledger views, events,
and what the sponsor's side needs when the TUI is attached to a daemon (evaluation
logs, diffs, holdback timers, the review of a flagged submission, payout repairs).

Handlers check the shape of a request, call the service (``Coordinator``: every change
of state, the payouts operations included) or ``operator_reads`` (what only the operator
reads), and turn the answer into JSON.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from aiohttp import web

from l402tui.bounty.gitsource import GitSource
from l402tui.coordinator import operator_reads
from l402tui.coordinator.errors import Invalid
from l402tui.coordinator.admin import AdminRefused
from l402tui.coordinator.http_common import ADMIN, GATE, SSE_FRAMES, SSE_TASKS, json_body, svc
from l402tui.coordinator.schema import event_id
from l402tui.coordinator.service_payouts import REVIEW_DECISIONS

log = logging.getLogger("l402tui.http")

HEARTBEAT_S = 15.0  # below common proxy idle timeouts
RECONNECT_MS = 2000  # what an EventSource waits before it reconnects (sent as `retry:`)
REVERIFY_S = 1.0  # an open stream re-checks its admin macaroon at most this often (revocation)


async def admin_list_bounties(request: web.Request) -> web.Response:
    return web.json_response({"bounties": await svc(request).list_bounties(include_all=True)})


async def admin_create_bounty(request: web.Request) -> web.Response:
    service = svc(request)
    if request.content_type in ("application/gzip", "application/x-gzip", "application/octet-stream"):
        from l402tui.coordinator.http_common import MAX_UPLOAD
        from l402tui.coordinator.schema import read_capped

        data = await read_capped(request, MAX_UPLOAD)
        # ?self_funded= was checked as a boolean by the schema layer (coordinator/schema.py).
        result = await service.create_bounty(data, self_funded=request.get("query:self_funded", False))
    else:
        body = await json_body(request)
        if "git" in body:
            if "path" in body:
                raise Invalid("give either 'path' or 'git', not both", code="invalid_request")
            # Fields were checked by the route's schema (coordinator/app.py); the source is fetched by publishing.
            source = GitSource(body["git"]["url"], body["git"]["commit"], body["git"].get("subdir", ""))
            result = await service.create_bounty(source, self_funded=body.get("self_funded", False) is True)
            return web.json_response(result, status=201)
        path = body.get("path")
        if not isinstance(path, str) or not path:
            raise Invalid("give {'path': '<bounty folder on the coordinator host>'}, {'git': {'url': ..., "
                          "'commit': ..., 'subdir': ...}} or upload a .tar.gz with Content-Type: application/gzip",
                          code="invalid_request", details={"field": "path"})
        if "\0" in path or any(len(part.encode("utf-8", "surrogatepass")) > 255 for part in path.split("/")):
            raise Invalid("'path' is not a usable folder name on this host (a NUL byte, or a component "
                          "over 255 bytes)", code="invalid_request", details={"field": "path"})
        result = await service.create_bounty(path, self_funded=body.get("self_funded", False) is True)
    return web.json_response(result, status=201)


async def admin_cancel(request: web.Request) -> web.Response:
    return web.json_response(await svc(request).cancel_bounty(request.match_info["id"]))


async def admin_close(request: web.Request) -> web.Response:
    return web.json_response(await svc(request).close_bounty(request.match_info["id"]))


async def admin_funding(request: web.Request) -> web.Response:
    bounty_id = request.match_info["id"]
    await svc(request).get_bounty(bounty_id)
    return web.json_response({"bounty_id": bounty_id, "funding": await svc(request).funding(bounty_id)})


def _int_query(request: web.Request, name: str, default: int, lo: int, hi: int, *, clamp: bool = True) -> int:
    """An integer query parameter; sizes are clamped to [lo, hi], positions (clamp=False) refused outside."""
    try:
        value = int(request.query.get(name, str(default)))
    except ValueError:
        raise Invalid(f"'{name}' must be an integer", code="invalid_request") from None
    if not clamp and not lo <= value <= hi:
        raise Invalid(f"'{name}' must be between {lo} and {hi} (got {value})", code="invalid_request")
    return max(lo, min(hi, value))


def _limit(request: web.Request) -> int:
    return _int_query(request, "limit", 500, 1, 100_000)


async def admin_submissions(request: web.Request) -> web.Response:
    subs = await svc(request).list_submissions(request.query.get("bounty_id"), _limit(request))
    return web.json_response({"submissions": subs})


async def admin_ledger(request: web.Request) -> web.Response:
    return web.json_response(await svc(request).ledger_page(request.query.get("bounty_id"), _limit(request)))


async def admin_revoke(request: web.Request) -> web.Response:
    n = await request.app[GATE].authority.revoke(request.match_info["token_id"])
    return web.json_response({"token_id": request.match_info["token_id"], "revoked_keys": n})


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: every state change, from ``?after=`` or ``Last-Event-ID`` on."""
    # Checked before the stream starts: once it has, an error can no longer be a status code.
    if "Last-Event-ID" in request.headers:
        after = event_id(request.headers["Last-Event-ID"], "Last-Event-ID")
    else:
        after = event_id(request.query.get("after", "0"), "after")
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    task = asyncio.current_task()
    request.app[SSE_TASKS].add(task)
    credential, checked = request.headers.get("Authorization"), time.monotonic()
    try:
        await response.write(f": l402tui events\nretry: {RECONNECT_MS}\n\n".encode())
        frames = request.app[SSE_FRAMES]
        async for batch in svc(request).follow_event_pages(after, heartbeat_s=HEARTBEAT_S):
            if time.monotonic() - checked >= REVERIFY_S:
                # A macaroon revoked (or rotated) while its stream is open stops it too.
                await request.app[ADMIN].verify_header(credential, max_age_s=REVERIFY_S)
                checked = time.monotonic()
            if batch is None:
                await response.write(b": keepalive\n\n")
                continue
            # One write a page, each event encoded once for every stream (a thousand clients
            # replaying the same history would each encode and write it event by event).
            await response.write(b"".join(frames.frame(event) for event in batch))
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    except AdminRefused:
        log.info("event stream ended: its admin macaroon is no longer valid")
    except Exception:  # noqa: BLE001 - the 200 is sent: end the stream; the client reconnects from its last id
        log.exception("event stream from %s ended by an error", after)
    finally:
        request.app[SSE_TASKS].discard(task)
    return response




# -- what the sponsor's side reads and decides (the TUI attached to a daemon) -------------------


async def admin_events_page(request: web.Request) -> web.Response:
    """A page of events as JSON (the stream's catch-up, and where it stands now)."""
    after = _int_query(request, "after", 0, 0, 2**62, clamp=False)
    limit = _int_query(request, "limit", 200, 1, 1000)
    service = svc(request)
    return web.json_response({"events": await service.events_after(after, limit),
                              "last_event_id": await service.last_event_id()})


async def admin_evaluations(request: web.Request) -> web.Response:
    rows = await operator_reads.list_evaluations(
        svc(request).store, limit=_int_query(request, "limit", 200, 1, 10_000),
        bounty_id=request.query.get("bounty_id"), submission_id=request.query.get("submission_id"))
    return web.json_response({"evaluations": rows})


def _evaluation_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    try:
        value = int(raw)
    except ValueError:
        raise Invalid(f"evaluation id {raw!r} is not a number; GET /api/v1/admin/evaluations lists them",
                      code="invalid_request") from None
    if not 0 < value < 2**63:
        raise Invalid(f"evaluation id {raw!r} is out of range", code="invalid_request")
    return value


async def admin_eval_log(request: web.Request) -> web.Response:
    page = await operator_reads.eval_log_page(
        svc(request).store, _evaluation_id(request), _int_query(request, "offset", 0, 0, 2**62, clamp=False),
        _int_query(request, "max_bytes", operator_reads.LOG_PAGE_DEFAULT, 1, operator_reads.LOG_PAGE_MAX))
    return web.json_response(page)


async def admin_submission(request: web.Request) -> web.Response:
    """A submission with its whole verdict and evaluation detail (the agent's route shows codes only)."""
    return web.json_response(await svc(request).submission_detail(request.match_info["id"]))


async def admin_diff(request: web.Request) -> web.Response:
    return web.json_response(await operator_reads.submission_diff(svc(request).store, request.match_info["id"]))


async def admin_holdbacks(request: web.Request) -> web.Response:
    rows = await operator_reads.holdback_timers(svc(request).store, request.query.get("bounty_id"))
    return web.json_response({"holdbacks": rows})


async def admin_review(request: web.Request) -> web.Response:
    """The sponsor's word on a FLAGGED submission: accept (the stake is refunded) or confirm
    gaming (the stake is forfeited to the pool)."""
    body = await json_body(request)
    return web.json_response(await svc(request).review(request.match_info["id"], body.get("decision"),
                                                       body.get("note", "")))


async def admin_claim_refund(request: web.Request) -> web.Response:
    body = await json_body(request)
    return web.json_response(await svc(request).claim_refund(request.match_info["id"], body.get("invoice")))


async def admin_resolve_payment(request: web.Request) -> web.Response:
    """An operator's verdict on an UNKNOWN payment, after checking the node by hand."""
    body = await json_body(request)
    return web.json_response(await svc(request).resolve_payment(request.match_info["key"], sent=body.get("sent"),
                                                                fee_msat=body.get("fee_msat", 0)))


async def admin_payouts(request: web.Request) -> web.Response:
    return web.json_response(await svc(request).payouts_state())


async def admin_resume_payouts(request: web.Request) -> web.Response:
    """Resume payouts after a halt; the books are checked again first."""
    body = await json_body(request)
    return web.json_response(await svc(request).resume_payouts(body.get("note")))


async def admin_wallet(request: web.Request) -> web.Response:
    service = svc(request)
    return web.json_response(await operator_reads.wallet_state(service.backend, service.safe_hold_window_s()))


async def admin_wallet_invoice(request: web.Request) -> web.Response:
    body = await json_body(request)
    return web.json_response(await operator_reads.deposit_invoice(svc(request).backend,
                                                                  int(body["amount_sats"]) * 1000))


_ADMIN = {401: "admin macaroon refused"}

# Added to the app's route table (coordinator/app.py builds `Route`s from these).
OPERATOR_ROUTES: list[dict[str, Any]] = [
    dict(method="GET", path="/api/v1/admin/events", handler=admin_events_page,
         summary="Events as JSON (?after=, ?limit= up to 1000) and the newest event id", access="admin",
         responses={200: "events", **_ADMIN, 422: "bad query"}),
    dict(method="GET", path="/api/v1/admin/evaluations", handler=admin_evaluations,
         summary="Evaluations, running first (?bounty_id=, ?submission_id=, ?limit=)", access="admin",
         responses={200: "evaluations", **_ADMIN, 422: "bad query"}),
    dict(method="GET", path="/api/v1/admin/evaluations/{id}/log", handler=admin_eval_log,
         summary="Whole log lines of an evaluation from byte ?offset= (at most ?max_bytes=, 1 MiB cap); "
                 "follow with next_offset", access="admin",
         responses={200: "log page", **_ADMIN, 404: "unknown evaluation", 422: "bad id or query"}),
    dict(method="GET", path="/api/v1/admin/submissions/{id}", handler=admin_submission,
         summary="A submission with its whole verdict, the evaluation's error and reason code", access="admin",
         responses={200: "submission", **_ADMIN, 404: "unknown submission"}),
    dict(method="GET", path="/api/v1/admin/submissions/{id}/diff", handler=admin_diff,
         summary="A submission's diff (for the sponsor's review)", access="admin",
         responses={200: "diff", **_ADMIN, 404: "unknown submission"}),
    dict(method="POST", path="/api/v1/admin/submissions/{id}/review", handler=admin_review,
         summary="Review a FLAGGED submission: accept (stake refunded) or confirm gaming (stake forfeited)",
         access="admin", body={"type": "object", "required": ["decision"], "properties": {
             "decision": {"type": "string", "enum": list(REVIEW_DECISIONS)},
             "note": {"type": "string", "maxLength": 2000}}},
         responses={200: "decision recorded", **_ADMIN, 404: "unknown submission", 409: "not flagged",
                    422: "bad decision"}),
    dict(method="GET", path="/api/v1/admin/holdbacks", handler=admin_holdbacks,
         summary="Holdback timers: release time, amount, state (?bounty_id=)", access="admin",
         responses={200: "holdbacks", **_ADMIN}),
    dict(method="GET", path="/api/v1/admin/wallet", handler=admin_wallet,
         summary="The coordinator's wallet: balance_msat, hold_window_s (longer deadlines are self-funded), "
                 "backend, node_id, can_deposit (sim only)", access="admin", responses={200: "wallet", **_ADMIN}),
    dict(method="POST", path="/api/v1/admin/wallet/invoice", handler=admin_wallet_invoice,
         summary="An invoice of the coordinator's node for amount_sats, to fund its wallet from another one",
         access="admin", body={"type": "object", "required": ["amount_sats"], "properties": {
             "amount_sats": {"type": "integer", "minimum": 1, "maximum": 2_100_000_000_000_000}}},
         responses={200: "invoice", **_ADMIN, 422: "bad amount"}),
    dict(method="GET", path="/api/v1/admin/payouts", handler=admin_payouts,
         summary="Whether payouts are halted (and why), and payments in state UNKNOWN", access="admin",
         responses={200: "payouts state", **_ADMIN}),
    dict(method="POST", path="/api/v1/admin/payouts/resume", handler=admin_resume_payouts,
         summary="Resume payouts after a halt (the books are checked first)", access="admin",
         body={"type": "object", "required": ["note"], "properties": {
             "note": {"type": "string", "minLength": 1, "maxLength": 2000}}},
         responses={200: "resumed", **_ADMIN, 409: "books do not balance", 422: "note missing"}),
    dict(method="POST", path="/api/v1/admin/payments/{key}/resolve", handler=admin_resolve_payment,
         summary="Resolve an UNKNOWN payment after checking the node: sent (booked as paid) or not (retried)",
         access="admin", body={"type": "object", "required": ["sent"], "properties": {
             "sent": {"type": "boolean"}, "fee_msat": {"type": "integer", "minimum": 0, "maximum": 2**62}}},
         responses={200: "payment", **_ADMIN, 404: "unknown payment", 409: "not UNKNOWN", 422: "bad body"}),
    dict(method="POST", path="/api/v1/admin/bounties/{id}/refund", handler=admin_claim_refund,
         summary="Pay the sponsor's BOLT11 invoice for a refund owed on the bounty", access="admin",
         body={"type": "object", "required": ["invoice"], "properties": {
             "invoice": {"type": "string", "minLength": 1, "maxLength": 4096}}},
         responses={200: "payment", **_ADMIN, 404: "unknown bounty", 409: "nothing owed or halted",
                    422: "bad invoice"}),
]
